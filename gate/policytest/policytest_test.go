package policytest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const examples = "../../docs/examples/policy-tests"

var now = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func load(t *testing.T, paths ...string) *Suite {
	t.Helper()
	s, err := Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExampleSuite: the seed's objects and expected decisions, as
// docs/policies.md shows them, pass.
func TestExampleSuite(t *testing.T) {
	s := load(t, examples)
	res, assumed := Run(s, Options{Now: now})
	var out strings.Builder
	if failed := Print(&out, res, assumed); failed != 0 || len(res) != 5 {
		t.Fatalf("%d of %d failed:\n%s", failed, len(res), out.String())
	}
	for _, want := range []string{"PASS  seed-onboarding/deploy to staging-eu-1 is allowed by the skill\n", "PASS: 5/5\n",
		"note: assumed the anchors of default/prod-deploy-bot accepted their agents"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// write makes a suite directory: the example's objects plus files.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	objs, err := filepath.Glob(filepath.Join(examples, "objects", "*.yaml"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("example objects: %v", err)
	}
	for _, o := range objs {
		b, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		files["objects/"+filepath.Base(o)] = string(b)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const header = "apiVersion: test.claiim.io/v1alpha1\nkind: DecisionTest\nmetadata:\n  name: t\nspec:\n  cases:\n"

// TestFailingCaseSaysWhatDiffered: a case whose expectation is wrong
// fails, naming its line, the outcome, and the rules that did not match.
func TestFailingCaseSaysWhatDiffered(t *testing.T) {
	dir := write(t, map[string]string{"t.yaml": header + `  - name: passes
    agent: prod-deploy-bot
    action: deploy:staging
    expect: {outcome: ALLOW, reason: OWN_AIORG}
  - name: wrong
    agent: default/prod-deploy-bot
    action: deploy:production
    expect:
      outcome: ALLOW
      reason: OWN_AIORG
      policies: [other/rule]
      audit: [staging-freeze/freeze-staging]
`})
	res, assumed := Run(load(t, dir), Options{Now: now})
	var out strings.Builder
	if failed := Print(&out, res, assumed); failed != 1 {
		t.Fatalf("%d failed, want 1:\n%s", failed, out.String())
	}
	for _, want := range []string{
		"PASS  t/passes\n",
		"FAIL  t/wrong  (" + filepath.Join(dir, "t.yaml") + ":11)\n",
		"got DENY POLICY_DENY, want ALLOW OWN_AIORG",
		"policies: got [no-production-deploys/deny-production-deploys], want [other/rule]; did not match: other/rule; also matched: no-production-deploys/deny-production-deploys",
		"audit: got [], want [staging-freeze/freeze-staging]",
		"message: policy deny: no-production-deploys/deny-production-deploys (v1)",
		"FAIL: 1/2 failed\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestStatusDerivedAsTheManagerWould: phases and grants come from the
// manager's rules, so a suspended agent, a skill of another org with and
// without a grant, and a grant past its end decide as in the cluster.
func TestStatusDerivedAsTheManagerWould(t *testing.T) {
	objects := `apiVersion: claiim.io/v1alpha1
kind: AIOrg
metadata: {name: finance}
---
apiVersion: claiim.io/v1alpha1
kind: Skill
metadata: {name: ledger}
spec:
  org: finance
  versions: [{version: 1, agentEmail: l@x.io, allowedActions: ["ledger:read"]}]
---
apiVersion: claiim.io/v1alpha1
kind: Agent
metadata: {name: borrower, namespace: agents}
spec: {org: engineering, accountabilityAnchor: a@x.io, skillRef: {name: ledger, version: 1}}
---
apiVersion: claiim.io/v1alpha1
kind: Agent
metadata: {name: resting, namespace: agents}
spec: {org: engineering, accountabilityAnchor: a@x.io, skillRef: {name: deploy-bot, version: 1}, lifecycle: Suspended}
---
apiVersion: claiim.io/v1alpha1
kind: Agent
metadata: {name: waiting, namespace: agents, annotations: {claiim.io/anchor-accepted: someone-else@x.io}}
spec: {org: engineering, accountabilityAnchor: a@x.io, skillRef: {name: deploy-bot, version: 1}}
`
	grant := `apiVersion: claiim.io/v1alpha1
kind: CrossOrgGrant
metadata: {name: fin-to-eng}
spec: {grantingOrg: finance, receivingOrg: engineering, skills: [ledger], expiresAt: "2026-12-04T00:00:00Z"}
`
	cases := func(now string, borrowed string) string {
		return "apiVersion: test.claiim.io/v1alpha1\nkind: DecisionTest\nmetadata: {name: t}\nspec:\n  now: " + now + "\n  cases:\n" +
			"  - {name: borrowed, agent: agents/borrower, action: ledger:read, expect: {outcome: " + borrowed + "}}\n" +
			"  - {name: suspended, agent: agents/resting, action: deploy:staging, expect: {outcome: DENY, reason: AGENT_INACTIVE}}\n" +
			"  - {name: not accepted, agent: agents/waiting, action: deploy:staging, expect: {outcome: DENY, reason: AGENT_INACTIVE}}\n"
	}
	for _, c := range []struct {
		name, files, now, borrowed string
		grant                      bool
	}{
		{"no grant: the agent stays Pending", objects, "2026-12-03T08:00:00Z", "DENY, reason: AGENT_INACTIVE", false},
		{"under an active grant", objects, "2026-12-03T08:00:00Z", "ALLOW, reason: CROSS_AIORG_GRANT", true},
		{"the grant has ended", objects, "2026-12-04T00:00:00Z", "DENY, reason: AGENT_INACTIVE", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"more.yaml": c.files, "t.yaml": cases(c.now, c.borrowed)}
			if c.grant {
				files["grant.yaml"] = grant
			}
			res, assumed := Run(load(t, write(t, files)), Options{Now: now})
			var out strings.Builder
			if Print(&out, res, assumed) != 0 {
				t.Fatal(out.String())
			}
		})
	}
}

// TestInvalidInput: every problem is reported with its file and line and
// what to fix, and nothing runs.
func TestInvalidInput(t *testing.T) {
	okCase := "  - {name: c, agent: prod-deploy-bot, action: deploy:staging, expect: {outcome: ALLOW, reason: OWN_AIORG}}\n"
	for _, c := range []struct {
		name, file, body string
		line             int
		want             string
	}{
		{"not YAML", "t.yaml", header + okCase + "  - name: c: d\n", 8, "not valid YAML: mapping values are not allowed"},
		{"a misspelt field", "t.yaml", header + "  - name: c\n    agent: prod-deploy-bot\n    action: deploy:staging\n    expect: {outcom: ALLOW, reason: OWN_AIORG}\n",
			10, `unknown field "outcom"`},
		{"a misspelt field of a Policy", "p.yaml", "apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    actions: [x]\n    efect: Deny\n",
			8, `unknown field "efect"`},
		{"a field of the wrong type", "p.yaml", "apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules: yes\n",
			5, "spec.rules must be a"},
		{"an unknown agent", "t.yaml", header + "  - {name: c, agent: agents/nobody, action: x, expect: {outcome: DENY, reason: NOT_PERMITTED}}\n",
			7, "agent agents/nobody is not declared"},
		{"an outcome that is not one", "t.yaml", header + "  - {name: c, agent: prod-deploy-bot, action: x, expect: {outcome: MAYBE, reason: R}}\n",
			7, `expect.outcome "MAYBE" must be ALLOW or DENY`},
		{"a policy whose condition does not compile", "p.yaml",
			"apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n  - {name: r, actions: [x], effect: Deny, condition: 'context.a =='}\n",
			1, `Policy p: rule "r"`},
		{"an enforcement that is not one", "p.yaml",
			"apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  enforcement: DryRun\n  rules:\n  - {name: r, actions: [x], effect: Deny}\n",
			1, `spec.enforcement "DryRun" must be Enforce or Audit`},
		{"an object declared twice", "dup.yaml", "apiVersion: claiim.io/v1alpha1\nkind: AIOrg\nmetadata: {name: engineering}\n",
			1, "AIOrg engineering is declared twice"},
		{"another version of the test kind", "t.yaml", "apiVersion: test.claiim.io/v1\nkind: DecisionTest\n", 1, "not a kind claiim test knows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{c.file: c.body}
			if c.file != "t.yaml" {
				files["t.yaml"] = header + okCase
			}
			dir := write(t, files)
			_, err := Load(dir)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Load = %v, want an *InvalidError", err)
			}
			at := filepath.Join(dir, c.file) + ":" + itoa(c.line) + ": "
			if !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not say %q at %s:\n%v", c.want, at, err)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no DecisionTest found") {
		t.Fatalf("an empty directory: %v", err)
	}
}

func itoa(n int) string { return Pos{Line: n}.String()[1:] }
