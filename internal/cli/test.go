package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/claiim/claiim-operator/gate/policytest"
)

const testUsage = `Usage:
  claiim test [--run REGEXP] [--now TIME] [--junit FILE] DIR|FILE|-...

Decides the DecisionTest cases (apiVersion test.claiim.io/v1alpha1) found in
the YAML files under each DIR with the gate's own decision function, over
the AIOrgs, Skills, Policies, Agents and CrossOrgGrants found there, offline:
no cluster, no database. "-" reads standard input (kustomize build ... |
claiim test - tests/). Prints PASS or FAIL for each case, with what
differed, and exits 1 on any failure or invalid file. docs/policies.md.

Flags:
`

// RunTest runs `claiim test`, printing the results to out.
func RunTest(args []string, out io.Writer) error { return runTest(args, os.Stdin, out) }

func runTest(args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, testUsage)
		fs.PrintDefaults()
	}
	run := fs.String("run", "", "only the cases whose TEST/CASE name matches this regular expression")
	at := fs.String("now", "", "decide at this time (RFC 3339) the tests that set no spec.now (default: the current time)")
	junit := fs.String("junit", "", "also write the results to FILE as a JUnit XML report, for CI test reporters")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("name a directory or file of objects and DecisionTests")
	}
	opts := policytest.Options{Now: time.Now()}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("--now %q is not an RFC 3339 time (e.g. 2026-12-03T08:00:00Z)", *at)
		}
		opts.Now = t
	}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			return fmt.Errorf("--run: %w", err)
		}
		opts.Run = re
	}
	suite, err := policytest.LoadFrom(stdin, fs.Args()...)
	if err != nil {
		return err
	}
	results, assumed := policytest.Run(suite, opts)
	if *junit != "" {
		if err := writeJUnit(*junit, results); err != nil {
			return err
		}
	}
	if failed := policytest.Print(out, results, assumed); failed > 0 {
		return fmt.Errorf("%d of %d decision tests failed", failed, len(results))
	}
	return nil
}

func writeJUnit(path string, results []policytest.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := policytest.WriteJUnit(f, results); err != nil {
		_ = f.Close()
		return fmt.Errorf("--junit: writing %s: %w", path, err)
	}
	return f.Close()
}
