package decide

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// denyCase is one decision over the seed's objects changed by mutate.
type denyCase struct {
	name    string
	mutate  func(*Inputs)
	action  string
	outcome Outcome
	reason  string
	// policies are the "policy/rule" a decision must record, msg what its
	// message must say.
	policies []string
	msg      string
}

func (c denyCase) run(t *testing.T) {
	t.Helper()
	in := seedInputs()
	if c.mutate != nil {
		c.mutate(&in)
	}
	d := decide(t, in, "bot", c.action, nil)
	if d.Outcome != c.outcome || d.Reason != c.reason {
		t.Fatalf("%s = %s %s (%s), want %s %s", c.action, d.Outcome, d.Reason, d.Message, c.outcome, c.reason)
	}
	for _, want := range c.policies {
		found := false
		for _, m := range d.Policies {
			found = found || m.Policy+"/"+m.Rule == want
		}
		if !found {
			t.Fatalf("%s: rule %s not recorded (recorded %+v)", c.action, want, d.Policies)
		}
	}
	if !strings.Contains(d.Message, c.msg) {
		t.Fatalf("message %q does not say %q", d.Message, c.msg)
	}
}

func rulePolicy(name, org string, effect claiimv1.PolicyEffect, actions ...claiimv1.ActionPattern) claiimv1.Policy {
	return claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(org),
		Rules: []claiimv1.PolicyRule{{Name: "r", Effect: effect, Actions: actions}}}}
}

func withPolicies(ps ...claiimv1.Policy) func(*Inputs) {
	return func(in *Inputs) { in.Policies = append(in.Policies, ps...) }
}

// TestDenyCoversSubActions: a Deny rule and a skill's forbidden pattern
// hold for the sub-actions beneath what they name (at a ':', never inside
// a segment); an allowed pattern and an Allow rule grant only what they
// match.
func TestDenyCoversSubActions(t *testing.T) {
	allowDeploys := rulePolicy("allow-deploys", "", claiimv1.PolicyEffectAllow, "deploy:*")
	for _, c := range []denyCase{
		{name: "a Deny of an action holds for its sub-action, even against an Allow of it", mutate: withPolicies(allowDeploys),
			action: "deploy:production:eu-1", outcome: Deny, reason: ReasonPolicyDeny,
			policies: []string{"no-production-deploys/deny-prod", "allow-deploys/r"}, msg: "no-production-deploys/deny-prod"},
		{name: "and two segments down", mutate: withPolicies(allowDeploys),
			action: "deploy:production:eu-1:canary", outcome: Deny, reason: ReasonPolicyDeny},
		{name: "a Deny of a resource holds for its actions", mutate: withPolicies(allowDeploys, rulePolicy("no-db", "", claiimv1.PolicyEffectDeny, "db"),
			rulePolicy("reads", "", claiimv1.PolicyEffectAllow, "db:*")),
			action: "db:orders:read", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"no-db/r"}},
		{name: "a Deny with a '*' segment holds for sub-actions", mutate: withPolicies(rulePolicy("no-deletes", "", claiimv1.PolicyEffectDeny, "*:delete"),
			rulePolicy("allow-all", "", claiimv1.PolicyEffectAllow, "*")),
			action: "db:delete:orders", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"no-deletes/r"}},
		{name: "a sub-action is beneath a whole segment, not a string prefix", mutate: withPolicies(allowDeploys),
			action: "deploy:production-eu", outcome: Allow, reason: ReasonPolicyAllow},
		{name: "the skill's forbid holds for the sub-action too", mutate: func(in *Inputs) {
			in.Policies = []claiimv1.Policy{rulePolicy("allow-all", "", claiimv1.PolicyEffectAllow, "*")}
		}, action: "deploy:production:eu-1", outcome: Deny, reason: ReasonSkillForbidden, msg: "pattern deploy:production"},
		{name: "a forbid beats a more specific allowed pattern", mutate: func(in *Inputs) {
			in.Policies = nil
			v := &in.Skills[0].Spec.Versions[0]
			v.AllowedActions = append(v.AllowedActions, "deploy:production:canary")
		}, action: "deploy:production:canary", outcome: Deny, reason: ReasonSkillForbidden},
		{name: "the double lock holds for the sub-action", action: "deploy:production:eu-1", outcome: Deny, reason: ReasonPolicyDeny,
			policies: []string{"no-production-deploys/deny-prod"}},
		{name: "an allowed pattern grants only what it matches", action: "deploy:staging:eu-1", outcome: Deny, reason: ReasonNotPermitted},
		{name: "an Allow rule grants only what it matches", mutate: withPolicies(rulePolicy("reads", "", claiimv1.PolicyEffectAllow, "db:read")),
			action: "db:read:orders", outcome: Deny, reason: ReasonNotPermitted},
		{name: "an allow of the sub-actions is written out", mutate: func(in *Inputs) {
			v := &in.Skills[0].Spec.Versions[0]
			v.AllowedActions = append(v.AllowedActions, "deploy:staging:*")
		}, action: "deploy:staging:eu-1", outcome: Allow, reason: ReasonOwnAIOrg},
	} {
		t.Run(c.name, c.run)
	}
}

// TestGrantKeepsGrantingOrgsDenies: an agent using another org's skill is
// under that org's Deny policies (and its ancestors'), as well as its own
// org's, whatever the grant says; the other org's Allow policies stay with
// that org's own agents.
func TestGrantKeepsGrantingOrgsDenies(t *testing.T) {
	// bot (engineering) pinned to ledger (finance), under an active grant.
	granted := func(in *Inputs) {
		in.Agents[0].Spec.SkillRef.Name = "ledger"
		v := &in.Skills[1].Spec.Versions[0]
		v.AllowedActions = append(v.AllowedActions, "ledger:export:*")
		exp := metav1.NewTime(now.Add(time.Hour))
		in.Grants = append(in.Grants, claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "fin-to-eng"},
			Spec:   claiimv1.CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}},
			Status: claiimv1.CrossOrgGrantStatus{Phase: claiimv1.GrantActive, ExpiresAt: &exp}})
	}
	then := func(fs ...func(*Inputs)) func(*Inputs) {
		return func(in *Inputs) {
			granted(in)
			for _, f := range fs {
				f(in)
			}
		}
	}
	withParent := func(org, parent string) func(*Inputs) {
		return func(in *Inputs) {
			in.Orgs = append(in.Orgs, claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: parent}})
			for i := range in.Orgs {
				if in.Orgs[i].Name == org {
					in.Orgs[i].Spec.Parent = claiimv1.OrgName(parent)
				}
			}
		}
	}
	for _, c := range []denyCase{
		{name: "the grant allows", mutate: granted, action: "ledger:read", outcome: Allow, reason: ReasonCrossAIOrgGrant},
		{name: "the granting org's Deny applies", mutate: then(withPolicies(rulePolicy("fin-freeze", "finance", claiimv1.PolicyEffectDeny, "ledger:read"))),
			action: "ledger:read", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"fin-freeze/r"}, msg: "fin-freeze/r"},
		{name: "with its sub-actions", mutate: then(withPolicies(rulePolicy("fin-no-export", "finance", claiimv1.PolicyEffectDeny, "ledger:export"))),
			action: "ledger:export:q3", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"fin-no-export/r"}},
		{name: "a Deny of the granting org's ancestor applies", mutate: then(withParent("finance", "holding"),
			withPolicies(rulePolicy("holding-freeze", "holding", claiimv1.PolicyEffectDeny, "ledger:*"))),
			action: "ledger:read", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"holding-freeze/r"}},
		{name: "the granting org's Deny applies without a grant, against the agent's org's Allow", mutate: func(in *Inputs) {
			granted(in)
			in.Grants = nil
			withPolicies(rulePolicy("eng-ledger", "engineering", claiimv1.PolicyEffectAllow, "ledger:*"),
				rulePolicy("fin-freeze", "finance", claiimv1.PolicyEffectDeny, "ledger:read"))(in)
		}, action: "ledger:read", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"fin-freeze/r", "eng-ledger/r"}},
		{name: "the receiving org's Deny still applies", mutate: then(withPolicies(rulePolicy("eng-freeze", "engineering", claiimv1.PolicyEffectDeny, "ledger"))),
			action: "ledger:read", outcome: Deny, reason: ReasonPolicyDeny, policies: []string{"eng-freeze/r"}},
		{name: "the granting org's Allow does not travel with the skill", mutate: then(withPolicies(rulePolicy("fin-writes", "finance", claiimv1.PolicyEffectAllow, "ledger:write"))),
			action: "ledger:write", outcome: Deny, reason: ReasonNotPermitted},
		{name: "a third org's Deny does not apply", mutate: then(func(in *Inputs) {
			in.Orgs = append(in.Orgs, claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "hr"}})
		}, withPolicies(rulePolicy("hr-freeze", "hr", claiimv1.PolicyEffectDeny, "ledger:read"))),
			action: "ledger:read", outcome: Allow, reason: ReasonCrossAIOrgGrant},
		{name: "the granting org's tree broken fails closed", mutate: then(func(in *Inputs) {
			for i := range in.Orgs {
				if in.Orgs[i].Name == "finance" {
					in.Orgs[i].Spec.Parent = "gone"
				}
			}
		}), action: "ledger:read", outcome: Deny, reason: ReasonAgentInactive, msg: "finance, which does not resolve"},
	} {
		t.Run(c.name, c.run)
	}
}
