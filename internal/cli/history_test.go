package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// TestHistoryCommand: generations the manager's role recorded, read back
// with the reader's role: the list, one generation's spec, a diff, and
// the refusals that say what to give instead.
func TestHistoryCommand(t *testing.T) {
	ctx, owner, url := migratedChron(t, "history")
	if err := chron.SetupLogins(ctx, owner, []chron.Login{
		{Group: chron.ManagerWriterRole, Name: "hist_manager", Password: "manager-password-0123456789"},
		{Group: chron.ReaderRole, Name: "hist_reader", Password: "reader-password-0123456789"},
	}); err != nil {
		t.Fatal(err)
	}
	as := func(role, password string) string {
		return strings.Replace(url, "postgres://postgres@", "postgres://"+role+":"+password+"@", 1)
	}
	mgr, err := pgxpool.New(ctx, as("hist_manager", "manager-password-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	record := func(uid string, gen int64, spec claiimv1.PolicySpec, who, session string) {
		t.Helper()
		g, err := chron.NewGeneration("Policy", uid, "", "no-production-deploys", gen, spec)
		if err != nil {
			t.Fatal(err)
		}
		g.ChangedBy, g.PIMSession, g.Admitted = who, session, true
		if _, _, err := chron.RecordGeneration(ctx, mgr, g); err != nil {
			t.Fatal(err)
		}
	}
	rule := func(actions ...claiimv1.ActionPattern) []claiimv1.PolicyRule {
		return []claiimv1.PolicyRule{{Name: "deny-prod", Effect: claiimv1.PolicyEffectDeny, Actions: actions}}
	}
	record("uid-1", 1, claiimv1.PolicySpec{DisplayName: "No production deploys", Rules: rule("deploy:production")}, "admin@claiim.io", "admin-onboarding")
	record("uid-1", 2, claiimv1.PolicySpec{DisplayName: "No production deploys", Rules: rule("deploy:production", "deploy:production-eu")},
		"peer@claiim.io", "peer-eu")

	readerURL := as("hist_reader", "reader-password-0123456789")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := RunHistory(append(args, "--database-url", readerURL), &out)
		return out.String(), err
	}

	out, err := run("policy/no-production-deploys")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "GENERATION") || strings.Contains(lines[0], "UID") ||
		!strings.Contains(lines[1], "admin@claiim.io") || !strings.Contains(lines[1], "admin-onboarding") ||
		!strings.HasPrefix(lines[2], "2 ") || !strings.Contains(lines[2], "peer-eu") || !strings.Contains(lines[2], "sha256:") {
		t.Errorf("the list:\n%s", out)
	}

	out, err = run("pol/no-production-deploys", "--generation", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Policy no-production-deploys generation 1 (uid uid-1)", "changed by admin@claiim.io, PIM session admin-onboarding",
		"displayName: No production deploys\n", "- deploy:production\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("generation 1 lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "production-eu") {
		t.Errorf("generation 1 shows generation 2's rule:\n%s", out)
	}

	out, err = run("policies/no-production-deploys", "--diff", "1", "2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "--- policy/no-production-deploys generation 1\n+++ policy/no-production-deploys generation 2\n@@ ") ||
		!strings.Contains(out, "\n+  - deploy:production-eu\n") || strings.Contains(out, "\n-") {
		t.Errorf("the diff:\n%s", out)
	}

	// The name re-used by another object: one generation needs --uid.
	record("uid-2", 1, claiimv1.PolicySpec{Rules: rule("deploy:*")}, "admin@claiim.io", "")
	if _, err := run("policy/no-production-deploys", "--generation", "1"); err == nil || !strings.Contains(err.Error(), "choose one with --uid") {
		t.Errorf("an ambiguous generation: %v", err)
	}
	out, err = run("policy/no-production-deploys", "--generation", "1", "--uid", "uid-2")
	if err != nil || !strings.Contains(out, "deploy:*") || !strings.Contains(out, "PIM session -") {
		t.Errorf("generation 1 of uid-2: %v\n%s", err, out)
	}
	if out, err := run("policy/no-production-deploys"); err != nil || !strings.Contains(out, "UID") || !strings.Contains(out, "uid-2") {
		t.Errorf("the list of two objects names them: %v\n%s", err, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"policy/no-production-deploys", "--generation", "7"}, "no history of Policy no-production-deploys generation 7"},
		{[]string{"pimrequest/x"}, "the history is kept for aiorg, skill, policy and agent"},
		{[]string{"agent/prod-deploy-bot"}, "give its namespace"},
		{[]string{"policy/x", "--diff", "1"}, "--diff needs two generations"},
		{[]string{"policy/x", "--diff", "1", "2", "--generation", "1"}, "either-or"},
		{[]string{"--generation", "1"}, "missing KIND/NAME"},
	} {
		if _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("claiim history %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
