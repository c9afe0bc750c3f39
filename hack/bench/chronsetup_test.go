package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// TestChronAsTheGate: the database bench sets up makes the gate write as
// production does (a login that is not the owner, under row-level
// security, chaining with its key), verify passes on what it wrote and
// fails the run on a stream chained without the key; and the CPU meter
// reads the gate's and PostgreSQL's time.
func TestChronAsTheGate(t *testing.T) {
	ctx := context.Background()
	pg, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	url, err := pg.CreateDatabase(ctx, "bench_setup_test")
	if err != nil {
		t.Fatal(err)
	}
	db, err := prepareChron(ctx, url, filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := chron.OpenPool(ctx, db.gate, chron.PoolOptions{Application: "bench-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var user string
	var owner bool
	if err := pool.QueryRow(ctx, `SELECT current_user, pg_has_role(current_user, c.relowner, 'MEMBER')
		FROM pg_class c WHERE c.oid = 'chron_records'::regclass`).Scan(&user, &owner); err != nil {
		t.Fatal(err)
	}
	if user != benchGateRole || owner {
		t.Fatalf("the gate logs in as %q (owner's member: %v); want %s, not the owner", user, owner, benchGateRole)
	}
	if _, err := pool.Exec(ctx, "DELETE FROM chron_records"); err == nil {
		t.Fatal("the gate's login may delete Chron's rows")
	}

	write := func(stream string, key *chron.ChainKey) {
		t.Helper()
		w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: stream, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := w.Write(ctx, &chron.Record{Kind: "decision", AgentName: "prod-deploy-bot", AgentNamespace: "default",
				Org: "engineering", Action: "deploy:staging", Outcome: "ALLOW", Reason: "OWN_AIORG"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := os.ReadDir(db.keysDir)
	if err != nil || len(keys) == 0 {
		t.Fatalf("no key files in %s: %v", db.keysDir, err)
	}
	key := db.keys.ChainKey()
	write("gate/bench-0", &key)
	if rep, err := db.verify(ctx, nil); err != nil || rep.Rows != 3 {
		t.Fatalf("verify of 3 keyed rows: %d rows, %v", rep.Rows, err)
	}
	write("gate/bench-unkeyed", nil)
	if _, err := db.verify(ctx, nil); err == nil || !strings.Contains(err.Error(), "unkeyed") {
		t.Fatalf("verify passed a stream chained without the key: %v", err)
	}

	pm, err := postmasterOf(ctx, url)
	if err != nil || pm == 0 {
		t.Fatalf("postmaster of the test server: %d, %v", pm, err)
	}
	m := cpuMeter{servers: []int{os.Getpid()}, postmaster: pm}
	before, err := m.read()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if _, err := pool.Exec(ctx, "SELECT count(*) FROM generate_series(1, 3000000)"); err != nil {
		t.Fatal(err)
	}
	after, err := m.read()
	if err != nil {
		t.Fatal(err)
	}
	if after.server <= before.server || after.pg <= before.pg {
		t.Errorf("CPU time did not grow with work: this process %v → %v, PostgreSQL %v → %v", before.server, after.server, before.pg, after.pg)
	}
}
