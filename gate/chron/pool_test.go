package chron

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A database that accepts TCP but never answers must not hold a component:
// the connect timeout ends the attempt, long before the caller's deadline.
func TestOpenPoolSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c // accepted, never answered
		}
	}()
	defer func() {
		close(held)
		for c := range held {
			c.Close()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := OpenPool(ctx, "postgres://claiim@"+l.Addr().String()+"/chron?sslmode=disable",
		PoolOptions{ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("Ping of a server that never answers succeeded")
	}
	if ctx.Err() != nil {
		t.Fatal("Ping waited for the caller's deadline: no connect timeout")
	}
}

func TestPoolConfigDefaultsAndURLWins(t *testing.T) {
	cfg, err := PoolConfig("postgres://u:p@127.0.0.1:5432/db", PoolOptions{Application: "claiim-gate",
		StatementTimeout: ComponentStatementTimeout, IdleInTxTimeout: ComponentIdleInTxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	rp := cfg.ConnConfig.RuntimeParams
	if cfg.ConnConfig.ConnectTimeout != defaultConnectTimeout || rp["statement_timeout"] != "10000ms" ||
		rp["idle_in_transaction_session_timeout"] != "30000ms" || rp["application_name"] != "claiim-gate" {
		t.Fatalf("defaults not applied: connect %v, params %v", cfg.ConnConfig.ConnectTimeout, rp)
	}
	cfg, err = PoolConfig("postgres://u:p@127.0.0.1:5432/db?connect_timeout=9&statement_timeout=1min&application_name=mine",
		PoolOptions{Application: "claiim-gate", StatementTimeout: ComponentStatementTimeout})
	if err != nil {
		t.Fatal(err)
	}
	rp = cfg.ConnConfig.RuntimeParams
	if cfg.ConnConfig.ConnectTimeout != 9*time.Second || rp["statement_timeout"] != "1min" || rp["application_name"] != "mine" {
		t.Fatalf("the URL's settings must win: connect %v, params %v", cfg.ConnConfig.ConnectTimeout, rp)
	}
	// The CLI sets no statement timeout: the server's own applies.
	cfg, err = PoolConfig("postgres://u:p@127.0.0.1:5432/db", PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; set {
		t.Fatal("a zero StatementTimeout must leave the server's setting")
	}
	if _, err := PoolConfig("postgres://u:secret@[::1", PoolOptions{}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a bad URL: %v (an error, never showing the password)", err)
	}
}

// On a real server the session carries the settings, a statement past the
// timeout is cancelled, and Migrate still runs (it lifts the timeout for
// its own transaction).
func TestOpenPoolSessionSettings(t *testing.T) {
	_, url := newDB(t)
	ctx := context.Background()
	pool, err := OpenPool(ctx, url, PoolOptions{Application: "claiim-test", StatementTimeout: 300 * time.Millisecond,
		IdleInTxTimeout: ComponentIdleInTxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var st, idle, app string
	if err := pool.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'), current_setting('application_name')").Scan(&st, &idle, &app); err != nil {
		t.Fatal(err)
	}
	if st != "300ms" || idle != "30s" || app != "claiim-test" {
		t.Fatalf("session settings: statement_timeout %s, idle_in_transaction_session_timeout %s, application_name %s", st, idle, app)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_sleep(5)"); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("a statement past statement_timeout: %v, want it cancelled", err)
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate under a statement timeout: %v", err)
	}
}
