package cli

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const policyTests = "../../docs/examples/policy-tests"

// suiteCopy copies the example suite, so a test can break it.
func suiteCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", policyTests+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dir
}

func TestClaiimTest(t *testing.T) {
	t.Run("the example suite passes", func(t *testing.T) {
		var out strings.Builder
		if err := RunTest([]string{"--now", "2026-12-03T08:00:00Z", policyTests}, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "PASS: 5/5") {
			t.Fatalf("no summary:\n%s", out.String())
		}
	})
	t.Run("--run keeps the matching cases", func(t *testing.T) {
		var out strings.Builder
		if err := RunTest([]string{"--run", "double lock", policyTests}, &out); err != nil || !strings.Contains(out.String(), "PASS: 1/1") {
			t.Fatalf("%v\n%s", err, out.String())
		}
	})
	t.Run("a failing case fails the run and says what differed", func(t *testing.T) {
		dir := suiteCopy(t)
		f := filepath.Join(dir, "tests", "seed.yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The seed's staging deploy expected denied: it is not.
		b = []byte(strings.Replace(string(b), "outcome: ALLOW\n      reason: OWN_AIORG", "outcome: DENY\n      reason: POLICY_DENY", 1))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		report := filepath.Join(t.TempDir(), "junit.xml")
		err = RunTest([]string{"--junit", report, dir}, &out)
		if err == nil || err.Error() != "1 of 5 decision tests failed" {
			t.Fatalf("err = %v\n%s", err, out.String())
		}
		var junit struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Suites   []struct {
				Cases []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Message string `xml:"message,attr"`
					} `xml:"failure"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		b, err = os.ReadFile(report)
		if err != nil || xml.Unmarshal(b, &junit) != nil || junit.Tests != 5 || junit.Failures != 1 || len(junit.Suites) != 1 {
			t.Fatalf("JUnit report (%v):\n%s", err, b)
		}
		if c := junit.Suites[0].Cases[0]; c.Failure == nil || c.Failure.Message != "got ALLOW OWN_AIORG, want DENY POLICY_DENY" {
			t.Fatalf("JUnit report's failed case: %+v\n%s", c, b)
		}
		for _, want := range []string{"FAIL  seed-onboarding/deploy to staging-eu-1 is allowed by the skill  (" + f + ":10)",
			"got ALLOW OWN_AIORG, want DENY POLICY_DENY", "FAIL: 1/5 failed"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
	t.Run("a malformed file fails the run before any case, naming its line", func(t *testing.T) {
		dir := suiteCopy(t)
		bad := filepath.Join(dir, "objects", "typo.yaml")
		if err := os.WriteFile(bad, []byte("apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: typo}\nspec:\n  rules:\n  - name: r\n    actions: [a]\n    efect: Deny\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err := RunTest([]string{dir}, &out)
		if err == nil || !strings.Contains(err.Error(), bad+`:8: Policy typo: unknown field "efect"`) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(out.String(), "PASS") {
			t.Fatalf("cases ran:\n%s", out.String())
		}
	})
	t.Run("objects from stdin, as kustomize build writes them", func(t *testing.T) {
		var objs strings.Builder
		files, err := filepath.Glob(filepath.Join(policyTests, "objects", "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs.WriteString("---\n" + string(b))
		}
		var out strings.Builder
		if err := runTest([]string{"-", filepath.Join(policyTests, "tests")}, strings.NewReader(objs.String()), &out); err != nil || !strings.Contains(out.String(), "PASS: 5/5") {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if err := runTest([]string{filepath.Join(policyTests, "tests")}, strings.NewReader(""), &out); err == nil {
			t.Fatal("the tests without their objects passed")
		}
	})
	t.Run("no directory", func(t *testing.T) {
		var out strings.Builder
		if err := RunTest(nil, &out); err == nil || !strings.Contains(out.String(), "Usage:") {
			t.Fatalf("err = %v\n%s", err, out.String())
		}
	})
}
