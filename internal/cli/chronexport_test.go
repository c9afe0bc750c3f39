package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/chron"
)

// TestChronExportCommands: `claiim chron export` writes a file that
// `claiim chron verify --file` accepts without the database, with the key
// Secret exported to files; an edited copy is refused with the line.
func TestChronExportCommands(t *testing.T) {
	ctx, pool, url := migratedChron(t, "export")
	keys, err := chron.NewKeySet(chron.ScopeGate, false)
	if err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	for name, v := range keys.Data() {
		if err := os.WriteFile(filepath.Join(keyDir, name), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ck := keys.ChainKey()
	w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/0", Key: &ck})
	if err != nil {
		t.Fatal(err)
	}
	for _, outcome := range []string{"ALLOW", "DENY", "ALLOW"} {
		r := chron.Record{Kind: "decision", AgentName: "prod-deploy-bot", AgentNamespace: "default", Org: "engineering",
			Action: "deploy:staging", Outcome: outcome, Reason: "OWN_AIORG", Anchor: "admin@claiim.io"}
		if _, err := w.Write(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := RunChron(args, &out)
		return out.String(), err
	}
	file := filepath.Join(t.TempDir(), "gate-0.ndjson")
	out, err := run("export", "--database-url", url, "--offline", "--gate-keys", keyDir, "--stream", "gate/0", "-o", file)
	if err != nil || !strings.Contains(out, "exported 3 rows of 1 streams") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := run("export", "--database-url", url, "--offline", "--stream", "gate/0", "-o", file); err == nil ||
		!strings.Contains(err.Error(), "never overwrites") {
		t.Fatalf("export over an existing file: %v\n%s", err, out)
	}
	if out, err := run("export", "--database-url", url, "--offline", "--stream", "gate/9", "-o", file+".2"); err == nil {
		t.Fatalf("export of a stream with no rows: %s", out)
	} else if _, serr := os.Stat(file + ".2"); serr == nil {
		t.Fatal("a failed export left a file")
	}
	// Offline: no database URL at all.
	t.Setenv("DATABASE_URL", "")
	out, err = run("verify", "--file", file, "--keys", keyDir)
	if err != nil || !strings.Contains(out, "OK: every row's hash and link verifies") || strings.Contains(out, "note:") {
		t.Fatalf("verify --file: %v\n%s", err, out)
	}
	if out, err := run("verify", "--file", file); err != nil || !strings.Contains(out, "3 keyed rows were checked by their links only") {
		t.Fatalf("verify --file without keys: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.ndjson")
	if err := os.WriteFile(edited, bytes.Replace(b, []byte(`"outcome":"DENY"`), []byte(`"outcome":"ALLOW"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run("verify", "--file", edited, "--keys", keyDir)
	if err == nil || !strings.Contains(out, `line 3 (stream "gate/0" seq 2): row changed`) || !strings.Contains(err.Error(), "do not prune with it") {
		t.Fatalf("verify --file of an edited copy: %v\n%s", err, out)
	}
}
