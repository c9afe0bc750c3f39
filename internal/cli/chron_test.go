package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// TestChronCommands runs `claiim chron migrate|list|verify` against a real
// PostgreSQL: migrate as the owner makes the gate's and a reader's roles,
// the gate's role writes, the reader lists and verifies, and verify reports
// a superuser's edit.
func TestChronCommands(t *testing.T) {
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
	// A fresh database: `chron migrate` is one of the commands under test.
	url, err := srv.CreateDatabase(ctx, "cli")
	if err != nil {
		t.Fatal(err)
	}
	as := func(role, password string) string {
		return strings.Replace(url, "postgres://postgres@", "postgres://"+role+":"+password+"@", 1)
	}
	readerURL := as("cli_reader", "reader-password-0123456789")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := RunChron(append(args, "--database-url", readerURL), &out)
		return out.String(), err
	}
	pwFile := filepath.Join(t.TempDir(), "gate-password")
	if err := os.WriteFile(pwFile, []byte("gate-password-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLAIIM_READER_DATABASE_URL", readerURL)
	var mout bytes.Buffer
	if err := RunChron([]string{"migrate", "--database-url", url, "--gate-role", "cli_gate", "--gate-password-file", pwFile}, &mout); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"role cli_gate: member of chron_gate_writer only, password set", "role cli_reader: member of chron_reader only, password set"} {
		if !strings.Contains(mout.String(), line) {
			t.Errorf("chron migrate's output lacks %q:\n%s", line, mout.String())
		}
	}
	if err := RunChron([]string{"migrate", "--database-url", url, "--manager-password-file", pwFile}, &mout); err == nil {
		t.Error("chron migrate took a password file without a role")
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	gatePool, err := pgxpool.New(ctx, as("cli_gate", "gate-password-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	defer gatePool.Close()
	w, err := chron.NewWriter(ctx, gatePool, chron.WriterOptions{Stream: "gate/cli"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []chron.Record{
		{Kind: "decision", AgentName: "prod-deploy-bot", AgentNamespace: "default", Org: "engineering", Action: "deploy:staging",
			Outcome: "ALLOW", Reason: "OWN_AIORG", Anchor: "admin@claiim.io", SkillVersionID: "deploy-bot-v1-abcd1234"},
		{Kind: "decision", AgentName: "prod-deploy-bot", AgentNamespace: "default", Org: "engineering", Action: "deploy:production",
			Outcome: "DENY", Reason: "POLICY_DENY", Anchor: "admin@claiim.io", SkillVersionID: "deploy-bot-v1-abcd1234",
			Policies: []chron.PolicyMatch{{Name: "no-production-deploys", Version: 1, Rule: "deny-prod", Effect: "Deny"}}},
	} {
		if _, err := w.Write(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := run("list", "--agent", "default/prod-deploy-bot")
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"TIME", "AGENT", "ACTION", "OUTCOME", "ANCHOR", "POLICY VERSION", "SKILL VERSION", "deploy:production", "no-production-deploys", "admin@claiim.io"} {
		if !strings.Contains(out, col) {
			t.Errorf("chron list output lacks %q:\n%s", col, out)
		}
	}
	if out, err := run("list", "--outcome", "DENY"); err != nil || strings.Contains(out, "deploy:staging") {
		t.Errorf("--outcome DENY listed an ALLOW (%v):\n%s", err, out)
	}

	// list pages through every row: past one page of 1,000, up to --limit.
	w2, err := chron.NewWriter(ctx, gatePool, chron.WriterOptions{Stream: "gate/cli-many"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := range 250 {
				r := chron.Record{Kind: "decision", AgentName: "busy-bot", AgentNamespace: "default", Org: "engineering",
					Action: fmt.Sprintf("read:%d", g*250+i), Outcome: "ALLOW", Reason: "OWN_AIORG"}
				if _, err := w2.Write(ctx, &r); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		rows int
	}{
		{[]string{"--limit", "0"}, 2500}, {[]string{"--limit", "1200"}, 1200}, {nil, 50}, {[]string{"--limit", "0", "--oldest-first"}, 2500},
	} {
		out, err := run(append([]string{"list", "--agent", "default/busy-bot"}, c.args...)...)
		if lines := strings.Count(out, "\n"); err != nil || lines != c.rows+1 || strings.Count(out, "TIME") != 1 {
			t.Errorf("list %v: %d lines, want a header and %d rows (%v)", c.args, lines, c.rows, err)
		}
	}

	// Without the Kubernetes API (and so without checkpoints) verify
	// refuses unless told the database alone is all it checks.
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	if out, err := run("verify"); err == nil || !strings.Contains(err.Error(), "--offline") {
		t.Fatalf("verify without a cluster: %v\n%s", err, out)
	}
	if out, err := run("verify", "--offline"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify of an untouched log: %v\n%s", err, out)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE chron_records DISABLE TRIGGER ALL;
		UPDATE chron_records SET outcome = 'ALLOW' WHERE action = 'deploy:production';
		ALTER TABLE chron_records ENABLE TRIGGER ALL`); err != nil {
		t.Fatal(err)
	}
	out, err = run("verify", "--offline")
	if err == nil || !strings.Contains(out, "TAMPERED stream gate/cli seq 2") {
		t.Fatalf("verify missed a superuser's edit (%v):\n%s", err, out)
	}
}
