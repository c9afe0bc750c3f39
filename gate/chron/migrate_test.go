package chron

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMigrate(t *testing.T) {
	pool, url := newDB(t) // already migrated once
	ctx := context.Background()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	// Several replicas starting at once on a fresh database.
	s := server(t)
	url2, err := s.CreateDatabase(ctx, "chron_"+randomSuffix())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		p := newPool(t, url2, func(c *pgxpool.Config) { c.MaxConns = 1 })
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Migrate(ctx, p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	ms, _ := migrations()
	for _, u := range []string{url, url2} {
		p := newPool(t, u, nil)
		var n, max int
		if err := p.QueryRow(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		if n != len(ms) || max != ms[len(ms)-1].version {
			t.Errorf("schema_migrations has %d rows up to %d, want %d", n, max, len(ms))
		}
	}

	// A migration edited after it was applied is refused.
	if _, err := pool.Exec(ctx, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, pool); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("Migrate with a changed migration: %v", err)
	}
}

// TestAppendOnly: the trigger refuses even the table's owner (a superuser).
func TestAppendOnly(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	if _, err := w.Write(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"UPDATE chron_records SET outcome = 'ALLOW'",
		"DELETE FROM chron_records",
		"TRUNCATE chron_records",
	} {
		_, err := pool.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "Chron is append-only") {
			t.Errorf("%s: got %v, want the append-only refusal", stmt, err)
		}
	}
}
