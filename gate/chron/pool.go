package chron

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolOptions bound how long a PostgreSQL that accepts connections but
// never answers can hold a CLAIIM component. Values set in the database
// URL (connect_timeout, or statement_timeout and
// idle_in_transaction_session_timeout as URL parameters) win.
type PoolOptions struct {
	// Application names the component in pg_stat_activity.
	Application string
	// ConnectTimeout bounds dialing and the startup handshake. Default 5s.
	ConnectTimeout time.Duration
	// StatementTimeout makes the server cancel a statement that runs
	// longer. 0 leaves the server's setting (the CLI: a verify of a large
	// log may take minutes).
	StatementTimeout time.Duration
	// IdleInTxTimeout makes the server end a session left idle inside a
	// transaction, so a stuck client cannot hold locks. 0 leaves the
	// server's setting.
	IdleInTxTimeout time.Duration
}

// Timeouts for the long-running components (gate and manager): each well
// above the gate's 2s write timeout, so they end only what is hung.
const (
	ComponentStatementTimeout = 10 * time.Second
	ComponentIdleInTxTimeout  = 30 * time.Second
	defaultConnectTimeout     = 5 * time.Second
)

// PoolConfig parses url and applies o.
func PoolConfig(url string, o PoolOptions) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err // pgx's message shows the URL with its password masked
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = o.ConnectTimeout
		if cc.ConnectTimeout == 0 {
			cc.ConnectTimeout = defaultConnectTimeout
		}
	}
	param := func(name string, d time.Duration) {
		if _, set := cc.RuntimeParams[name]; !set && d > 0 {
			cc.RuntimeParams[name] = fmt.Sprintf("%dms", d.Milliseconds())
		}
	}
	param("statement_timeout", o.StatementTimeout)
	param("idle_in_transaction_session_timeout", o.IdleInTxTimeout)
	if _, set := cc.RuntimeParams["application_name"]; !set && o.Application != "" {
		cc.RuntimeParams["application_name"] = o.Application
	}
	return cfg, nil
}

// OpenPool is pgxpool.New with PoolOptions applied. It does not connect
// yet; the first use does.
func OpenPool(ctx context.Context, url string, o PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(url, o)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
