package cli

// Chron while PostgreSQL may be down or not yet migrated. The manager and
// the gate never migrate: they connect with their own writer roles, which
// may not, and the owner's URL is not theirs (`claiim chron migrate` runs
// as a Helm hook Job, the kustomize Job or in `make dev`). They start and
// serve anyway, and a runnable checks until the schema is at the version
// this binary needs. Until then every Write fails with a message that
// names Chron and says what to do, so the webhooks refuse what they must
// record (fail-closed, 503), the gate answers DENY CHRON_UNAVAILABLE and
// the reconcilers retry with their backoff; afterwards Writes go to the
// writer, which itself reconnects when the database comes back.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
)

// Backoff of the schema check's retries.
const (
	schemaRetryFirst = time.Second
	schemaRetryMax   = 30 * time.Second
)

// checkedChron is a component's Chron log and the runnable that waits for
// its schema.
type checkedChron struct {
	component string // "manager" or "gate", for messages
	need      int    // the schema version this binary needs
	pool      *pgxpool.Pool
	writer    *chron.Writer
	log       logr.Logger
	ready     atomic.Bool
	turn      chan struct{} // one check at a time
}

func newCheckedChron(component string, pool *pgxpool.Pool, w *chron.Writer, log logr.Logger) *checkedChron {
	return &checkedChron{component: component, need: chron.RequiredVersion(), pool: pool, writer: w, log: log,
		turn: make(chan struct{}, 1)}
}

// Write records r once the schema is known to be ready. A Write that finds
// it not yet known checks itself (within its own deadline), so the first
// request after a migration does not wait for the retry's backoff.
func (c *checkedChron) Write(ctx context.Context, r *chron.Record) (chron.Row, error) {
	if err := c.check(ctx); err != nil {
		return chron.Row{}, err
	}
	return c.writer.Write(ctx, r)
}

// WriteWithin is Write with its wait bounded by d through the writer's own
// timer (server.TimedLog): the gate's path, without a context timer per
// decision. Until the schema is known to be ready, its check counts
// against d too.
func (c *checkedChron) WriteWithin(ctx context.Context, r *chron.Record, d time.Duration) (chron.Row, error) {
	if !c.ready.Load() {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, d)
		err := c.check(cctx)
		cancel()
		if err != nil {
			return chron.Row{}, err
		}
		if d -= time.Since(start); d <= 0 { // WriteWithin would not bound a wait of d <= 0
			return chron.Row{}, context.DeadlineExceeded
		}
	}
	return c.writer.WriteWithin(ctx, r, d)
}

var _ server.TimedLog = (*checkedChron)(nil)

// check reads the schema version unless it was found ready; concurrent
// callers wait for the one reading. Once ready, always ready: a schema is
// never migrated down.
func (c *checkedChron) check(ctx context.Context) error {
	if c.ready.Load() {
		return nil
	}
	select {
	case c.turn <- struct{}{}:
		defer func() { <-c.turn }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.ready.Load() {
		return nil
	}
	v, err := chron.SchemaVersion(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("chron: not ready: the %s cannot read Chron's schema version (PostgreSQL unreachable, or "+
			"refusing the %s's role: see its log; `claiim chron migrate` creates the role): %w", c.component, c.component, err)
	}
	if v < c.need {
		return fmt.Errorf("chron: not ready: Chron's schema is at version %d, this %s needs %d: run `claiim chron migrate` "+
			"with the owner's database URL (the Helm hook Job and the kustomize Job do it)", v, c.component, c.need)
	}
	if !c.ready.Swap(true) {
		c.log.Info("Chron's schema is ready: what must be recorded is recorded and admitted again", "version", v, "needs", c.need)
	}
	return nil
}

// Start checks the schema, retrying with backoff, and logs each failure.
// It ends when the schema is ready or the component stops.
func (c *checkedChron) Start(ctx context.Context) error {
	wait := schemaRetryFirst
	for {
		err := c.check(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		c.log.Error(err, "Chron is not ready; changes that must be recorded are refused until it is", "retryIn", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, schemaRetryMax)
	}
}

// EventID forwards the writer's unpredictable, stable event ids
// (controllers.recordEvent refuses a log without them).
func (c *checkedChron) EventID(parts ...string) string { return c.writer.EventID(parts...) }

// Stalled forwards the writer's wedge detection (the gate's liveness).
func (c *checkedChron) Stalled(now time.Time) bool { return c.writer.Stalled(now) }

// NeedLeaderElection is false: every replica's webhooks need Chron.
func (c *checkedChron) NeedLeaderElection() bool { return false }

// RecordGeneration keeps a generation in Chron's history once the schema
// has it (controllers.HistoryStore).
func (c *checkedChron) RecordGeneration(ctx context.Context, g chron.Generation) (chron.Generation, bool, error) {
	if err := c.check(ctx); err != nil {
		return chron.Generation{}, false, err
	}
	return chron.RecordGeneration(ctx, c.pool, g)
}

// RecordedBefore reads Chron's history once the schema has it.
func (c *checkedChron) RecordedBefore(ctx context.Context, uid string, gen int64) (int64, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	return chron.RecordedBefore(ctx, c.pool, uid, gen)
}
