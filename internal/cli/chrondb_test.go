package cli

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// migratedChron starts a throwaway PostgreSQL with a Chron database named
// name, migrated, and returns a context bounding the test, the owner's
// pool and the database's URL; all of it ends with the test.
func migratedChron(t *testing.T, name string) (context.Context, *pgxpool.Pool, string) {
	t.Helper()
	ctx, pool, url := emptyChron(t, name)
	if err := chron.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return ctx, pool, url
}

// emptyChron is migratedChron before the migration: a database Chron's
// schema is not in yet.
func emptyChron(t *testing.T, name string) (context.Context, *pgxpool.Pool, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	url, err := srv.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return ctx, pool, url
}
