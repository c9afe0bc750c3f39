package decide

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Rule is a compiled policy rule.
type Rule struct {
	Name      string
	Effect    claiimv1.PolicyEffect
	Patterns  []Pattern
	Condition *Condition // nil: always

	// Agent scope: all when both are empty.
	Names    map[string]struct{} // "namespace/name"
	Selector labels.Selector

	// Broken is the compile error of a Deny rule kept to fail closed.
	Broken string

	// A RequireApproval rule's bounds, defaults applied.
	ApprovalsRequired int32
	ApprovalTTL       time.Duration
}

// AppliesTo reports whether the rule's agent scope includes the agent.
func (r *Rule) AppliesTo(a *Agent) bool {
	if r.Names != nil {
		_, ok := r.Names[a.Namespace+"/"+a.Name]
		return ok
	}
	if r.Selector != nil {
		return r.Selector.Matches(a.Labels)
	}
	return true
}

// Takes reports whether the rule's patterns take in action. A Deny rule
// covers what its patterns match and every sub-action beneath it (a deny
// of "deploy:production" holds for "deploy:production:eu-1"); an Allow
// rule only what they match. Either way the rule errs on the safe side.
func (r *Rule) Takes(action string) bool {
	deny := r.Effect != claiimv1.PolicyEffectAllow // Deny and RequireApproval hold sub-actions too
	for i := range r.Patterns {
		if deny && r.Patterns[i].Covers(action) || !deny && r.Patterns[i].Match(action) {
			return true
		}
	}
	return false
}

// CompiledPolicy is a Policy ready for the hot path.
type CompiledPolicy struct {
	Name    string
	Org     string // "" for every org
	Version int64  // metadata.generation
	// Audit: the policy only records what it would deny (spec.enforcement).
	Audit bool
	Rules []Rule
}

// CompilePolicy validates and compiles every rule of p. The error joins
// one line per broken rule, prefixed with the rule's name, so a platform
// engineer sees everything to fix at once.
//
// The policy returned is usable even when err != nil, and fails closed: a
// broken Allow rule is left out (it never grants), while a broken Deny rule
// is kept as Broken and matches every action in its scope (a deny is
// never weakened by a typo).
func CompilePolicy(p *claiimv1.Policy) (*CompiledPolicy, error) {
	cp := &CompiledPolicy{Name: p.Name, Org: string(p.Spec.Org), Version: p.Generation, Audit: p.Audit()}
	var errs []error
	for _, r := range p.Spec.Rules {
		rule, err := compileRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
			if r.Effect != claiimv1.PolicyEffectAllow {
				cp.Rules = append(cp.Rules, Rule{Name: r.Name, Effect: claiimv1.PolicyEffectDeny, Broken: err.Error(),
					Patterns: []Pattern{MustParsePattern("*")}})
			}
			continue
		}
		cp.Rules = append(cp.Rules, rule)
	}
	return cp, errors.Join(errs...)
}

func compileRule(r claiimv1.PolicyRule) (Rule, error) {
	rule := Rule{Name: r.Name, Effect: r.Effect}
	switch r.Effect {
	case claiimv1.PolicyEffectAllow, claiimv1.PolicyEffectDeny:
	case claiimv1.PolicyEffectRequireApproval:
		rule.ApprovalsRequired, rule.ApprovalTTL = max(r.ApprovalsRequired, 1), claiimv1.DefaultApprovalTTLSeconds*time.Second
		if r.ApprovalsRequired > 2 {
			return Rule{}, fmt.Errorf("approvalsRequired %d: at most 2", r.ApprovalsRequired)
		}
		if r.ApprovalTTLSeconds != 0 {
			rule.ApprovalTTL = time.Duration(min(max(r.ApprovalTTLSeconds, 60), claiimv1.MaxApprovalTTLSeconds)) * time.Second
		}
	default:
		return Rule{}, fmt.Errorf("effect %q must be Allow, Deny or RequireApproval", r.Effect)
	}
	if len(r.Actions) == 0 {
		return Rule{}, fmt.Errorf("no actions: name at least one action pattern")
	}
	for _, a := range r.Actions {
		p, err := ParsePattern(string(a))
		if err != nil {
			return Rule{}, err
		}
		rule.Patterns = append(rule.Patterns, p)
	}
	if r.Condition != "" {
		c, err := CompileCondition(r.Condition)
		if err != nil {
			return Rule{}, err
		}
		rule.Condition = c
	}
	if r.Agents != nil {
		if r.Agents.Names != nil { // an empty list names nobody
			rule.Names = make(map[string]struct{}, len(r.Agents.Names))
			for _, n := range r.Agents.Names {
				rule.Names[n] = struct{}{}
			}
		}
		if r.Agents.Selector != nil {
			sel, err := metav1.LabelSelectorAsSelector(r.Agents.Selector)
			if err != nil {
				return Rule{}, fmt.Errorf("agents.selector: %w", err)
			}
			rule.Selector = sel
		}
	}
	return rule, nil
}
