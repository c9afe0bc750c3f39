package cli

// The manager's Chron while PostgreSQL may be down: the manager starts and
// serves anyway, and migrates the schema in a runnable that retries until
// it succeeds. Until then every Write fails with a message that names
// Chron, so the webhooks refuse what they must record (fail-closed, 503)
// and the reconcilers retry with their backoff; afterwards Writes go to
// the writer, which itself reconnects when the database comes back.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Backoff of the migration's retries.
const (
	migrateRetryFirst = time.Second
	migrateRetryMax   = 30 * time.Second
)

var errChronNotMigrated = errors.New("chron: not ready: the manager has not migrated Chron's schema yet " +
	"(PostgreSQL unreachable or refusing; see the manager's log); retry once it is")

// managerChron is the manager's Chron log and the runnable that migrates it.
type managerChron struct {
	pool     *pgxpool.Pool
	writer   *chron.Writer
	log      logr.Logger
	migrated atomic.Bool
}

// Write records r once the schema is migrated.
func (c *managerChron) Write(ctx context.Context, r *chron.Record) (chron.Row, error) {
	if !c.migrated.Load() {
		return chron.Row{}, errChronNotMigrated
	}
	return c.writer.Write(ctx, r)
}

// Start migrates Chron, retrying with backoff, and logs each failure. It
// ends when the migration is done or the manager stops.
func (c *managerChron) Start(ctx context.Context) error {
	wait := migrateRetryFirst
	for {
		err := chron.Migrate(ctx, c.pool)
		if err == nil {
			c.migrated.Store(true)
			c.log.Info("Chron migrated: control-plane changes are recorded and admitted again")
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Error(err, "cannot migrate Chron; changes that must be recorded are refused until it succeeds", "retryIn", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, migrateRetryMax)
	}
}

// NeedLeaderElection is false: every replica's webhooks need Chron.
func (c *managerChron) NeedLeaderElection() bool { return false }
