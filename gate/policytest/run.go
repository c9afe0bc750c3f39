package policytest

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Options of a run.
type Options struct {
	// Now decides the tests that set no spec.now.
	Now time.Time
	// Run, when set, keeps the cases whose "test/case" name it matches.
	Run *regexp.Regexp
}

// Result is one case's verdict.
type Result struct {
	Test, Case string
	Pos        Pos
	Pass       bool
	// Diffs say what differed from what the case expects, one per line.
	Diffs []string
	// Message is the decision's message.
	Message string
}

// Run decides every case with gate/decide over the snapshot the gate
// would build from the suite's objects (World.Inputs) and compares.
func Run(s *Suite, opts Options) ([]Result, Assumed) {
	var out []Result
	var assumed Assumed
	snaps := map[time.Time]*decide.Snapshot{}
	for _, t := range s.Tests {
		now := opts.Now
		if t.Spec.Now != "" {
			now, _ = time.Parse(time.RFC3339, t.Spec.Now) // checked by Load
		}
		snap, ok := snaps[now]
		if !ok {
			var in decide.Inputs
			in, assumed = s.World.Inputs(now)
			snap = decide.Build(in)
			snaps[now] = snap
		}
		for i := range t.Spec.Cases {
			c := &t.Spec.Cases[i]
			if opts.Run != nil && !opts.Run.MatchString(t.Metadata.Name+"/"+c.Name) {
				continue
			}
			r := runCase(snap, c, now)
			r.Test, r.Case, r.Pos = t.Metadata.Name, c.Name, t.Pos
			if i < len(t.Cases) {
				r.Pos = t.Cases[i]
			}
			out = append(out, r)
		}
	}
	return out, assumed
}

func runCase(snap *decide.Snapshot, c *Case, now time.Time) Result {
	ns, name := agentRef(c.Agent)
	a, _ := snap.Agent(ns, name) // checked by Load
	req := decide.Request{Agent: a, Action: c.Action, Context: c.Context, SkillVersionID: c.SkillVersion, Now: now}
	if sv, ok := snap.PinnedVersion(a); ok {
		switch c.SkillVersion {
		case "", idWithoutDigest(sv):
			req.SkillVersionID = sv.ID // what a correctly configured agent presents
		}
	}
	d := decide.Decide(snap, req)
	r := Result{Message: d.Message}
	if string(d.Outcome) != c.Expect.Outcome || d.Reason != c.Expect.Reason {
		r.Diffs = append(r.Diffs, fmt.Sprintf("got %s %s, want %s %s", d.Outcome, d.Reason, c.Expect.Outcome, c.Expect.Reason))
	}
	var enforced, audit []string
	for _, m := range d.Policies {
		ref := m.Policy + "/" + m.Rule
		if m.Enforcement == claiimv1.PolicyAudit {
			audit = append(audit, ref)
		} else {
			enforced = append(enforced, ref)
		}
	}
	r.Diffs = append(r.Diffs, compare("policies", enforced, c.Expect.Policies)...)
	r.Diffs = append(r.Diffs, compare("audit", audit, c.Expect.Audit)...)
	r.Pass = len(r.Diffs) == 0
	return r
}

// idWithoutDigest is sv's id without its digest: "deploy-bot-v1".
func idWithoutDigest(sv *decide.SkillVersion) string {
	return fmt.Sprintf("%s-v%d", sv.Skill, sv.Version)
}

// compare says how the rules that matched differ from the wanted ones
// (nil: not checked), as sets.
func compare(field string, got []string, want *[]string) []string {
	if want == nil {
		return nil
	}
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(*want))
	g, w = slices.Compact(g), slices.Compact(w)
	if slices.Equal(g, w) {
		return nil
	}
	var missing, extra []string
	for _, x := range w {
		if !slices.Contains(g, x) {
			missing = append(missing, x)
		}
	}
	for _, x := range g {
		if !slices.Contains(w, x) {
			extra = append(extra, x)
		}
	}
	line := fmt.Sprintf("%s: got [%s], want [%s]", field, strings.Join(g, ", "), strings.Join(w, ", "))
	if len(missing) > 0 {
		line += "; did not match: " + strings.Join(missing, ", ")
	}
	if len(extra) > 0 {
		line += "; also matched: " + strings.Join(extra, ", ")
	}
	return []string{line}
}

// Print writes one line per case, PASS or FAIL, what differed under each
// FAIL, and a summary, as `go test -v` and `opa test` do. It returns the
// number of failed cases.
func Print(w io.Writer, results []Result, assumed Assumed) int {
	failed := 0
	for _, r := range results {
		if r.Pass {
			fmt.Fprintf(w, "PASS  %s/%s\n", r.Test, r.Case)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s/%s  (%s)\n", r.Test, r.Case, r.Pos)
		for _, d := range r.Diffs {
			fmt.Fprintf(w, "        %s\n", d)
		}
		fmt.Fprintf(w, "        message: %s\n", r.Message)
	}
	if len(assumed.Anchors) > 0 {
		fmt.Fprintf(w, "note: assumed the anchors of %s accepted their agents (an anchor's act in the cluster, not in git)\n", strings.Join(assumed.Anchors, ", "))
	}
	if len(assumed.Grants) > 0 {
		fmt.Fprintf(w, "note: assumed both orgs approved grants %s (an admin's act in the cluster, not in git)\n", strings.Join(assumed.Grants, ", "))
	}
	switch {
	case len(results) == 0:
		fmt.Fprintln(w, "no case ran (-run matched none)")
	case failed == 0:
		fmt.Fprintf(w, "PASS: %d/%d\n", len(results), len(results))
	default:
		fmt.Fprintf(w, "FAIL: %d/%d failed\n", failed, len(results))
	}
	return failed
}
