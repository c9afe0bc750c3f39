package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClaiimTestExitCode: `claiim test` as a CI job runs it: exit 0 when
// every case passes, 1 with the reason on stderr when one fails or a file
// is invalid.
func TestClaiimTestExitCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "claiim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	suite := "../../docs/examples/policy-tests"
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "t.yaml"), []byte(
		"apiVersion: test.claiim.io/v1alpha1\nkind: DecisionTest\nmetadata: {name: t}\nspec:\n  cases:\n"+
			"  - {name: c, agent: default/prod-deploy-bot, action: deploy:staging, expect: {outcome: DENY, reason: POLICY_DENY}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"passing", []string{"test", suite}, 0, "PASS: 5/5", ""},
		{"failing", []string{"test", suite, broken}, 1, "FAIL  t/c", "claiim test: 1 of 6 decision tests failed"},
		{"invalid", []string{"test", broken}, 1, "", "agent default/prod-deploy-bot is not declared in the input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.code || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout.String(), stderr.String())
			}
		})
	}
}
