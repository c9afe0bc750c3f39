package policytest

import (
	"fmt"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

// check finds what the cluster would refuse or report broken, and what
// makes a case unrunnable, so a run never passes on a typo.
func (s *Suite) check() []Problem {
	var probs []Problem
	at := func(kind, ns, name string) Pos { return s.where[kind+"/"+ns+"/"+name] }
	for i := range s.World.Policies {
		p := &s.World.Policies[i]
		pos := at("Policy", "", p.Name)
		switch p.Spec.Enforcement {
		case "", claiimv1.PolicyEnforce, claiimv1.PolicyAudit:
		default:
			probs = append(probs, Problem{pos, fmt.Sprintf("Policy %s: spec.enforcement %q must be Enforce or Audit", p.Name, p.Spec.Enforcement)})
		}
		if _, err := decide.CompilePolicy(p); err != nil {
			// The gate would keep a broken Deny and deny everything in its
			// scope: a test of it would pass for the wrong reason.
			for _, line := range strings.Split(err.Error(), "\n") {
				probs = append(probs, Problem{pos, fmt.Sprintf("Policy %s: %s", p.Name, line)})
			}
		}
	}
	for i := range s.World.Skills {
		sk := &s.World.Skills[i]
		seen := map[int32]bool{}
		for _, v := range sk.Spec.Versions {
			if v.Version < 1 || seen[v.Version] {
				probs = append(probs, Problem{at("Skill", "", sk.Name), fmt.Sprintf("Skill %s: version %d is not a new number from 1", sk.Name, v.Version)})
			}
			seen[v.Version] = true
			for _, p := range append(append([]claiimv1.ActionPattern{}, v.AllowedActions...), v.ForbiddenActions...) {
				if _, err := decide.ParsePattern(string(p)); err != nil {
					probs = append(probs, Problem{at("Skill", "", sk.Name), fmt.Sprintf("Skill %s version %d: %v", sk.Name, v.Version, err)})
				}
			}
		}
	}
	if len(s.Tests) == 0 {
		probs = append(probs, Problem{Pos{File: "(input)"}, fmt.Sprintf("no %s found: add a file with apiVersion: %s, kind: %s and spec.cases", Kind, APIVersion, Kind)})
	}
	names := map[string]Pos{}
	for _, t := range s.Tests {
		if prev, dup := names[t.Metadata.Name]; dup {
			probs = append(probs, Problem{t.Pos, fmt.Sprintf("%s %q is declared twice, here and at %s: rename one", Kind, t.Metadata.Name, prev)})
		}
		names[t.Metadata.Name] = t.Pos
		probs = append(probs, s.checkTest(t)...)
	}
	return probs
}

func (s *Suite) checkTest(t *Test) []Problem {
	var probs []Problem
	bad := func(pos Pos, format string, a ...any) {
		probs = append(probs, Problem{pos, fmt.Sprintf(format, a...)})
	}
	switch {
	case t.Metadata.Name == "":
		bad(t.Pos, "%s: metadata.name is empty: name the test", Kind)
	case len(t.Metadata.Name) > maxNameLen:
		bad(t.Pos, "%s: metadata.name is longer than %d characters", Kind, maxNameLen)
	}
	if t.Spec.Now != "" {
		if _, err := time.Parse(time.RFC3339, t.Spec.Now); err != nil {
			bad(t.Pos, "%s %s: spec.now %q is not an RFC 3339 time (e.g. 2026-12-03T08:00:00Z)", Kind, t.Metadata.Name, t.Spec.Now)
		}
	}
	if len(t.Spec.Cases) == 0 || len(t.Spec.Cases) > MaxCases {
		bad(t.Pos, "%s %s: spec.cases must hold 1 to %d cases", Kind, t.Metadata.Name, MaxCases)
	}
	seen := map[string]bool{}
	for i := range t.Spec.Cases {
		c, pos := &t.Spec.Cases[i], t.Pos
		if i < len(t.Cases) {
			pos = t.Cases[i]
		}
		what := fmt.Sprintf("case %d", i+1)
		if c.Name != "" {
			what = fmt.Sprintf("case %q", c.Name)
		}
		switch {
		case c.Name == "" || len(c.Name) > maxNameLen:
			bad(pos, "%s: name it (1 to %d characters)", what, maxNameLen)
		case seen[c.Name]:
			bad(pos, "%s: another case of %s has this name: rename one", what, t.Metadata.Name)
		}
		seen[c.Name] = true
		if ns, name := agentRef(c.Agent); c.Agent == "" {
			bad(pos, "%s: agent is empty: write namespace/name of an Agent in the input", what)
		} else if _, ok := s.where["Agent/"+ns+"/"+name]; !ok {
			bad(pos, "%s: agent %s/%s is not declared in the input: add its Agent, or fix the name (namespace/name; a bare name is in namespace default)", what, ns, name)
		}
		if err := decide.ValidateAction(c.Action); err != nil {
			bad(pos, "%s: action %q: %v", what, c.Action, err)
		}
		if c.Expect.Outcome != string(decide.Allow) && c.Expect.Outcome != string(decide.Deny) {
			bad(pos, "%s: expect.outcome %q must be ALLOW or DENY", what, c.Expect.Outcome)
		}
		if c.Expect.Reason == "" {
			bad(pos, "%s: expect.reason is empty: write the reason code the gate must give (OWN_AIORG, POLICY_DENY, ...)", what)
		}
		for _, f := range []struct {
			field string
			refs  *[]string
		}{{"expect.policies", c.Expect.Policies}, {"expect.audit", c.Expect.Audit}} {
			for _, r := range deref(f.refs) {
				if p, rule, ok := strings.Cut(r, "/"); !ok || p == "" || rule == "" {
					bad(pos, "%s: %s entry %q must be policy/rule", what, f.field, r)
				}
			}
		}
	}
	return probs
}

// agentRef splits "namespace/name"; a bare name is in namespace default.
func agentRef(s string) (ns, name string) {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		return ns, name
	}
	return "default", s
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}
