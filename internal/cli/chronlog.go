package cli

// Chron while PostgreSQL may be down: the manager and the gate start and
// serve anyway, and migrate the schema in a runnable that retries until it
// succeeds. Until then every Write fails with a message that names Chron,
// so the webhooks refuse what they must record (fail-closed, 503), the
// gate answers DENY CHRON_UNAVAILABLE and the reconcilers retry with their
// backoff; afterwards Writes go to the writer, which itself reconnects
// when the database comes back.

import (
	"context"
	"fmt"
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

func errChronNotMigrated(component string) error {
	return fmt.Errorf("chron: not ready: the %s has not migrated Chron's schema yet "+
		"(PostgreSQL unreachable or refusing; see the %s's log); retry once it is", component, component)
}

// migratingChron is a component's Chron log and the runnable that migrates
// it.
type migratingChron struct {
	component string // "manager" or "gate", for messages
	pool      *pgxpool.Pool
	writer    *chron.Writer
	log       logr.Logger
	migrated  atomic.Bool
	turn      chan struct{} // one migration at a time
}

func newMigratingChron(component string, pool *pgxpool.Pool, w *chron.Writer, log logr.Logger) *migratingChron {
	return &migratingChron{component: component, pool: pool, writer: w, log: log, turn: make(chan struct{}, 1)}
}

// Write records r once the schema is migrated. A Write that finds it not
// yet migrated tries the migration itself (within its own deadline), so the
// first request after PostgreSQL returns does not wait for the retry's
// backoff.
func (c *migratingChron) Write(ctx context.Context, r *chron.Record) (chron.Row, error) {
	if err := c.migrate(ctx); err != nil {
		return chron.Row{}, fmt.Errorf("%w: %w", errChronNotMigrated(c.component), err)
	}
	return c.writer.Write(ctx, r)
}

// migrate applies the migrations unless done; concurrent callers wait for
// the one running.
func (c *migratingChron) migrate(ctx context.Context) error {
	if c.migrated.Load() {
		return nil
	}
	select {
	case c.turn <- struct{}{}:
		defer func() { <-c.turn }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.migrated.Load() {
		return nil
	}
	if err := chron.Migrate(ctx, c.pool); err != nil {
		return err
	}
	if !c.migrated.Swap(true) {
		c.log.Info("Chron migrated: what must be recorded is recorded and admitted again")
	}
	return nil
}

// Start migrates Chron, retrying with backoff, and logs each failure. It
// ends when the migration is done or the manager stops.
func (c *migratingChron) Start(ctx context.Context) error {
	wait := migrateRetryFirst
	for {
		err := c.migrate(ctx)
		if err == nil {
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

// EventID forwards the writer's unpredictable, stable event ids
// (controllers.recordEvent refuses a log without them).
func (c *migratingChron) EventID(parts ...string) string { return c.writer.EventID(parts...) }

// Stalled forwards the writer's wedge detection (the gate's liveness).
func (c *migratingChron) Stalled(now time.Time) bool { return c.writer.Stalled(now) }

// NeedLeaderElection is false: every replica's webhooks need Chron.
func (c *migratingChron) NeedLeaderElection() bool { return false }
