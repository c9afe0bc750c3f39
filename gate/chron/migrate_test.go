package chron

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

func TestGrantWriter(t *testing.T) {
	pool, url := newDB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE ROLE chron_writer LOGIN"); err != nil {
		t.Fatal(err)
	}
	// Start from too much, to show GrantWriter narrows it; run it twice.
	if _, err := pool.Exec(ctx, "GRANT ALL ON chron_records TO chron_writer"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := GrantWriter(ctx, pool, "chron_writer"); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"postgres", "no_such_role", ""} {
		if err := GrantWriter(ctx, pool, bad); err == nil {
			t.Errorf("GrantWriter(%q) succeeded", bad)
		}
	}

	wpool := newPool(t, url, func(c *pgxpool.Config) { c.ConnConfig.User = "chron_writer" })
	w := newWriter(t, wpool, WriterOptions{Stream: "restricted"})
	for i := range 3 {
		if _, err := w.Write(ctx, decision(i)); err != nil {
			t.Fatalf("write as chron_writer: %v", err)
		}
	}
	// Idempotent retry needs only INSERT (ON CONFLICT DO NOTHING) and SELECT.
	r := decision(9)
	r.ID = "retry-1"
	for range 2 {
		if _, err := w.Write(ctx, r); err != nil {
			t.Fatalf("retry as chron_writer: %v", err)
		}
	}
	rows, _, err := List(ctx, wpool, Filter{})
	if err != nil || len(rows) != 4 {
		t.Fatalf("list as chron_writer: %d rows, %v", len(rows), err)
	}
	if rep, err := Verify(ctx, wpool); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify as chron_writer: %+v, %v", rep, err)
	}
	for _, stmt := range []string{
		"UPDATE chron_records SET outcome = 'ALLOW'",
		"DELETE FROM chron_records",
		"TRUNCATE chron_records",
		"ALTER TABLE chron_records DISABLE TRIGGER ALL",
		"INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')",
	} {
		_, err := wpool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42P01") {
			t.Errorf("%s as chron_writer: got %v, want permission denied", stmt, err)
		}
	}
	var privs []string
	r2, err := pool.Query(ctx, `SELECT privilege_type FROM information_schema.role_table_grants
		WHERE grantee = 'chron_writer' AND table_name = 'chron_records' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	privs, err = pgx.CollectRows(r2, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(privs, ",") != "INSERT,SELECT" {
		t.Errorf("chron_writer holds %v on chron_records, want INSERT,SELECT", privs)
	}
}
