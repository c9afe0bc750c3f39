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
	presented := c.SkillVersion
	if sv, ok := snap.PinnedVersion(a); ok {
		presented = c.Presents(sv.ID)
	}
	d := decide.Decide(snap, decide.Request{Agent: a, Action: c.Action, Context: c.Context, SkillVersionID: presented, Now: now})
	diffs := c.Diff(AnswerOf(d))
	return Result{Message: d.Message, Diffs: diffs, Pass: len(diffs) == 0}
}

// Presents is the skill version id the case's agent presents, given the
// id of the version it is pinned to: that id when the case names none or
// names it without its digest ("deploy-bot-v1"), else what it names.
func (c *Case) Presents(pinnedID string) string {
	if c.SkillVersion == "" {
		return pinnedID // what a correctly configured agent presents
	}
	if i := strings.LastIndexByte(pinnedID, '-'); i > 0 && c.SkillVersion == pinnedID[:i] {
		return pinnedID
	}
	return c.SkillVersion
}

// Answer is a decision in the terms a case checks: rules as
// "policy/rule", enforced ones apart from Audit ones.
type Answer struct {
	Outcome, Reason string
	Policies, Audit []string
}

// AnswerOf is d as an Answer.
func AnswerOf(d decide.Decision) Answer {
	a := Answer{Outcome: string(d.Outcome), Reason: d.Reason}
	for _, m := range d.Policies {
		ref := m.Policy + "/" + m.Rule
		if m.Enforcement == claiimv1.PolicyAudit {
			a.Audit = append(a.Audit, ref)
		} else {
			a.Policies = append(a.Policies, ref)
		}
	}
	return a
}

// Diff says how a differs from what the case expects; nil when it does
// not.
func (c *Case) Diff(a Answer) []string {
	var diffs []string
	if a.Outcome != c.Expect.Outcome || a.Reason != c.Expect.Reason {
		diffs = append(diffs, fmt.Sprintf("got %s %s, want %s %s", a.Outcome, a.Reason, c.Expect.Outcome, c.Expect.Reason))
	}
	diffs = append(diffs, compare("policies", a.Policies, c.Expect.Policies)...)
	return append(diffs, compare("audit", a.Audit, c.Expect.Audit)...)
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
