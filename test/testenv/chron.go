package testenv

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// startChron starts a throwaway PostgreSQL (or uses
// CLAIIM_TEST_DATABASE_URL), makes a database for Chron and migrates it.
func startChron(ctx context.Context) (*pgtest.Server, *pgxpool.Pool, error) {
	srv, err := pgtest.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	url, err := srv.CreateDatabase(ctx, "chron")
	if err != nil {
		srv.Stop()
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		srv.Stop()
		return nil, nil, err
	}
	if err := chron.Migrate(ctx, pool); err != nil {
		pool.Close()
		srv.Stop()
		return nil, nil, fmt.Errorf("migrating Chron: %w", err)
	}
	return srv, pool, nil
}
