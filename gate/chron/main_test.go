package chron

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// One throwaway PostgreSQL for the package, started on first use (so that
// -short never starts it); each test gets its own database.
var (
	srvOnce sync.Once
	srv     *pgtest.Server
	srvErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

func server(tb testing.TB) *pgtest.Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs PostgreSQL; skipped with -short")
	}
	srvOnce.Do(func() { srv, srvErr = pgtest.Start(context.Background()) })
	if srvErr != nil {
		tb.Fatalf("starting PostgreSQL: %v", srvErr)
	}
	return srv
}

// newDB makes a fresh migrated database and returns a superuser pool on it
// and its URL.
func newDB(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	s := server(tb)
	ctx := context.Background()
	url, err := s.CreateDatabase(ctx, "chron_"+randomSuffix())
	if err != nil {
		tb.Fatal(err)
	}
	pool := newPool(tb, url, nil)
	if err := Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	return pool, url
}

func newPool(tb testing.TB, url string, edit func(*pgxpool.Config)) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func newWriter(tb testing.TB, pool *pgxpool.Pool, opts WriterOptions) *Writer {
	tb.Helper()
	if opts.Stream == "" {
		opts.Stream = "gate-0"
	}
	w, err := NewWriter(context.Background(), pool, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Close() })
	return w
}

var base = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// decision is a gate decision like the seed's second action.
func decision(i int) *Record {
	return &Record{
		Time:           base.Add(time.Duration(i) * time.Second),
		Kind:           KindDecision,
		AgentName:      "prod-deploy-bot",
		AgentNamespace: "agents",
		AgentUID:       "5a1c1b2e-0000-4000-8000-000000000001",
		Org:            "engineering",
		Action:         "deploy:production",
		Context:        map[string]any{"target": "prod-eu-1", "attempt": i},
		Outcome:        OutcomeDeny,
		Reason:         "POLICY_DENY",
		Message:        "denied by policy no-prod-deploys and skill deploy-bot v1",
		Anchor:         "admin@claiim.io",
		SkillVersionID: "deploy-bot-v1",
		SkillDigest:    "sha256:9f2c",
		Policies:       []PolicyMatch{{Name: "no-prod-deploys", Version: 3, Rule: "deploy:production", Effect: "Deny"}},
		SkillRules:     []string{"forbidden:deploy:production"},
		Replica:        "gate-0",
		RequestID:      fmt.Sprintf("req-%d", i),
	}
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a hang detector, not a performance threshold).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// randomSuffix names a test database or stream: the random tail of an ID
// (its head is the time, shared by IDs made in the same millisecond).
func randomSuffix() string {
	id := NewID()
	return id[len(id)-8:]
}
