package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// TestRoundTrip proves the helper gives a working database: a row written
// in one connection is read back from another.
func TestRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.CreateDatabase(ctx, "roundtrip")
	if err != nil {
		t.Fatal(err)
	}

	w, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if _, err := w.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(ctx, `INSERT INTO t VALUES ($1, $2)`, 1, "deploy:staging"); err != nil {
		t.Fatal(err)
	}

	r, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var v string
	if err := r.QueryRow(ctx, `SELECT v FROM t WHERE id = 1`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "deploy:staging" {
		t.Fatalf("read back %q, want %q", v, "deploy:staging")
	}
}
