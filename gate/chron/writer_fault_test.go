package chron

// The writer when PostgreSQL goes away: restarts and a database that does
// not answer.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// TestRestart stops PostgreSQL under a live writer: writes fail (they do not
// hang), then succeed again on the same Writer once it is back.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	s, pool := ownServer(t, "chron_restart")
	var err error
	const commitTimeout = 2 * time.Second
	w := newWriter(t, pool, WriterOptions{CommitTimeout: commitTimeout})
	for i := range 3 {
		if _, err := w.Write(ctx, decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Control(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		guard, cancel := context.WithTimeout(ctx, 60*time.Second)
		began := time.Now()
		_, err := w.Write(guard, decision(10+i))
		hung := guard.Err() != nil
		cancel()
		if err == nil || hung {
			t.Fatalf("write while stopped: err %v, hung %v", err, hung)
		}
		t.Logf("write while stopped failed after %v (CommitTimeout %v): %v", time.Since(began).Round(time.Millisecond), commitTimeout, err)
	}
	if err := s.Control(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	r := decision(20) // retried with the same ID until the database answers
	var row Row
	eventually(t, "a write to succeed after restart", func() bool {
		row, err = w.Write(ctx, r)
		return err == nil
	})
	if _, err := w.Write(ctx, decision(21)); err != nil {
		t.Fatal(err)
	}
	if row.Seq != 4 {
		t.Errorf("first row after restart has seq %d, want 4", row.Seq)
	}
	rep, err := Verify(ctx, pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 5 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if st := w.Stats(); st.BatchesFailed == 0 {
		t.Errorf("stats %+v: no failed batch recorded", st)
	}
}

// TestUnreachable points the pool at a database that does not answer: the
// connection attempt hangs, as it does behind a dead network path.
func TestUnreachable(t *testing.T) {
	_, url := newDB(t)
	ctx := context.Background()
	var stall atomic.Bool
	release := make(chan struct{})
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unstall)
	pool := newPool(t, url, func(c *pgxpool.Config) {
		c.MaxConns = 16
		c.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if stall.Load() {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-release:
					return nil, fmt.Errorf("test: database unreachable")
				}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	short := newWriter(t, pool, WriterOptions{Stream: "short", CommitTimeout: 500 * time.Millisecond})
	long := newWriter(t, pool, WriterOptions{Stream: "long", QueueSize: 1, MaxBatch: 1, CommitTimeout: time.Hour})
	stall.Store(true)
	pool.Reset() // drop the idle connections: every batch must dial

	// CommitTimeout bounds a Write even when nothing answers.
	if _, err := short.Write(ctx, decision(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to an unreachable database: %v, want a deadline error", err)
	}

	// Overload: one record in flight, one queued, the next is refused at once.
	errs := make(chan error, 2)
	go func() { _, err := long.Write(ctx, decision(2)); errs <- err }()
	eventually(t, "first record in flight", func() bool { return long.Stats().InFlight == 1 })
	go func() { _, err := long.Write(ctx, decision(3)); errs <- err }()
	eventually(t, "second record queued", func() bool { return long.Stats().Queued == 1 })
	if _, err := long.Write(ctx, decision(4)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third write: %v, want ErrOverloaded", err)
	}
	if long.Stats().Overloaded != 1 {
		t.Errorf("stats: %+v", long.Stats())
	}
	// The network fails for good: the in-flight batch fails, and the queued
	// record fails with it instead of waiting for its own attempt.
	stall.Store(false)
	unstall()
	for range 2 {
		if err := <-errs; err == nil || errors.Is(err, ErrOverloaded) {
			t.Errorf("waiting write: %v, want a commit error", err)
		}
	}
	if _, err := long.Write(ctx, decision(5)); err != nil {
		t.Fatalf("write after the network is back: %v", err)
	}
}

// TestWriterStartsWithoutDatabase: NewWriter does not need PostgreSQL, so
// a component starts while it is down. Writes fail (they do not hang)
// until it is back; then the first batch reads the stream's head and the
// chain continues where the previous writer of the stream stopped.
func TestWriterStartsWithoutDatabase(t *testing.T) {
	ctx := context.Background()
	s, pool := ownServer(t, "chron_cold_start")
	var err error
	before := newWriter(t, pool, WriterOptions{})
	for i := range 2 {
		if _, err := before.Write(ctx, decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Control(ctx, "stop"); err != nil {
		t.Fatal(err)
	}
	pool.Reset() // no connection left from before: the writer must dial

	w, err := NewWriter(ctx, pool, WriterOptions{Stream: "gate-0", CommitTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewWriter with PostgreSQL down: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	guard, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, err = w.Write(guard, decision(10))
	hung := guard.Err() != nil
	cancel()
	if err == nil || hung {
		t.Fatalf("write while PostgreSQL is down: err %v, hung %v", err, hung)
	}
	if err := s.Control(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	r := decision(11)
	var row Row
	eventually(t, "a write to succeed once PostgreSQL is up", func() bool {
		row, err = w.Write(ctx, r)
		return err == nil
	})
	if row.Seq != 3 {
		t.Errorf("first row of the new writer has seq %d, want 3 (after the stream's 2)", row.Seq)
	}
	rep, err := Verify(ctx, pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// ownServer starts a PostgreSQL cluster of the test's own (stopping it must
// not disturb other tests) with database db, migrated.
func ownServer(t *testing.T, db string) (*pgtest.Server, *pgxpool.Pool) {
	t.Helper()
	server(t) // honours -short
	ctx := context.Background()
	s, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	url, err := s.CreateDatabase(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, url, nil)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return s, pool
}
