package decide

import (
	"strings"
	"testing"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func auditPolicy(name string, effect claiimv1.PolicyEffect, actions ...claiimv1.ActionPattern) claiimv1.Policy {
	p := rulePolicy(name, "", effect, actions...)
	p.Spec.Enforcement = claiimv1.PolicyAudit
	return p
}

// TestAuditNeverChangesTheAnswer: for each request, the decision with an
// Audit policy added is the decision without it (outcome, reason,
// message, enforced matches), and the Audit policy's matching Deny rules
// are recorded as would-deny.
func TestAuditNeverChangesTheAnswer(t *testing.T) {
	for _, c := range []struct {
		name      string
		base      func(*Inputs) // the world without the audit policy
		audit     claiimv1.Policy
		action    string
		outcome   Outcome
		reason    string
		wouldDeny []string // "policy/rule" recorded as Audit
	}{
		{name: "an Audit Deny does not deny an allowed action", audit: auditPolicy("no-staging", claiimv1.PolicyEffectDeny, "deploy:staging"),
			action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg, wouldDeny: []string{"no-staging/r"}},
		{name: "an Audit Deny of a parent action is recorded for the sub-action", audit: auditPolicy("no-deploys", claiimv1.PolicyEffectDeny, "deploy"),
			base: func(in *Inputs) {
				in.Policies = []claiimv1.Policy{rulePolicy("allow-sub", "", claiimv1.PolicyEffectAllow, "deploy:staging:*")}
			},
			action: "deploy:staging:eu-1", outcome: Allow, reason: ReasonPolicyAllow, wouldDeny: []string{"no-deploys/r"}},
		{name: "an enforced Deny still wins, and the Audit match is recorded beside it", audit: auditPolicy("audit-prod", claiimv1.PolicyEffectDeny, "deploy:*"),
			action: "deploy:production", outcome: Deny, reason: ReasonPolicyDeny, wouldDeny: []string{"audit-prod/r"}},
		{name: "an Audit Allow does not allow", audit: auditPolicy("allow-all", claiimv1.PolicyEffectAllow, "*"),
			action: "db:read", outcome: Deny, reason: ReasonNotPermitted},
		{name: "an Audit Allow does not lift the skill's forbid", audit: auditPolicy("allow-prod", claiimv1.PolicyEffectAllow, "deploy:production"),
			base:   func(in *Inputs) { in.Policies = nil },
			action: "deploy:production", outcome: Deny, reason: ReasonSkillForbidden},
		{name: "a broken Audit Deny records a would-deny of everything but denies nothing", audit: func() claiimv1.Policy {
			p := auditPolicy("broken", claiimv1.PolicyEffectDeny, "deploy:staging")
			p.Spec.Rules[0].Condition = "context.target ==" // does not compile
			return p
		}(), action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg, wouldDeny: []string{"broken/r"}},
		{name: "an Audit Deny whose condition fails to evaluate is a would-deny", audit: func() claiimv1.Policy {
			p := auditPolicy("eu-only", claiimv1.PolicyEffectDeny, "deploy:staging")
			p.Spec.Rules[0].Condition = `context.region != "eu"` // no region in the context: an evaluation error
			return p
		}(), action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg, wouldDeny: []string{"eu-only/r"}},
		{name: "an Audit Deny whose condition is false records nothing", audit: func() claiimv1.Policy {
			p := auditPolicy("only-us", claiimv1.PolicyEffectDeny, "deploy:staging")
			p.Spec.Rules[0].Condition = `context.target == "us-1"`
			return p
		}(), action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := seedInputs()
			if c.base != nil {
				c.base(&in)
			}
			ctx := map[string]any{"target": "eu-staging-1"}
			without := decide(t, in, "bot", c.action, ctx)
			in.Policies = append(in.Policies, c.audit)
			with := decide(t, in, "bot", c.action, ctx)
			if with.Outcome != c.outcome || with.Reason != c.reason {
				t.Fatalf("%s = %s %s (%s), want %s %s", c.action, with.Outcome, with.Reason, with.Message, c.outcome, c.reason)
			}
			if with.Outcome != without.Outcome || with.Reason != without.Reason || with.Message != without.Message {
				t.Fatalf("the Audit policy changed the answer: %s %s %q, without it %s %s %q",
					with.Outcome, with.Reason, with.Message, without.Outcome, without.Reason, without.Message)
			}
			var enforced []PolicyMatch
			for _, m := range with.Policies {
				if m.Enforcement == "" {
					enforced = append(enforced, m)
				}
			}
			if len(enforced) != len(without.Policies) {
				t.Fatalf("enforced matches %+v, without the Audit policy %+v", enforced, without.Policies)
			}
			var got []string
			for _, m := range with.Audit() {
				if m.Effect != claiimv1.PolicyEffectDeny || m.Enforcement != claiimv1.PolicyAudit {
					t.Errorf("audit match %+v is not a Deny marked Audit", m)
				}
				got = append(got, m.Policy+"/"+m.Rule)
			}
			if strings.Join(got, ",") != strings.Join(c.wouldDeny, ",") {
				t.Fatalf("would-deny %v, want %v (policies %+v)", got, c.wouldDeny, with.Policies)
			}
		})
	}
}

// TestAuditNotNamedAsTheDeny: the message of a POLICY_DENY names the
// enforced rules that denied, never an Audit one.
func TestAuditNotNamedAsTheDeny(t *testing.T) {
	in := seedInputs()
	in.Policies = append(in.Policies, auditPolicy("audit-prod", claiimv1.PolicyEffectDeny, "deploy:production"))
	d := decide(t, in, "bot", "deploy:production", nil)
	if d.Reason != ReasonPolicyDeny || strings.Contains(d.Message, "audit-prod") || !strings.Contains(d.Message, "no-production-deploys") {
		t.Fatalf("%s %q: the message must name the enforced deny only", d.Reason, d.Message)
	}
	if len(d.Audit()) != 1 {
		t.Fatalf("audit %+v, want audit-prod/r", d.Audit())
	}
}

// TestAuditOnlyPolicyDeniesNothing: the seed's Deny switched to Audit
// leaves the skill's forbid as the one lock; and with an Allow policy in
// place of the skill's allow, the audit Deny does not stop it.
func TestAuditOnlyPolicyDeniesNothing(t *testing.T) {
	in := seedInputs()
	in.Policies[0].Spec.Enforcement = claiimv1.PolicyAudit
	d := decide(t, in, "bot", "deploy:production", nil)
	if d.Outcome != Deny || d.Reason != ReasonSkillForbidden {
		t.Fatalf("deploy:production = %s %s, want DENY SKILL_FORBIDDEN (the policy only audits)", d.Outcome, d.Reason)
	}
	if a := d.Audit(); len(a) != 1 || a[0].Policy != "no-production-deploys" || a[0].Version != 3 {
		t.Fatalf("audit %+v", a)
	}
	in.Skills[0].Spec.Versions[0].ForbiddenActions = nil
	in.Policies = append(in.Policies, rulePolicy("allow-prod", "", claiimv1.PolicyEffectAllow, "deploy:production"))
	d = decide(t, in, "bot", "deploy:production", nil)
	if d.Outcome != Allow || d.Reason != ReasonPolicyAllow || len(d.Audit()) != 1 {
		t.Fatalf("deploy:production = %s %s (audit %+v), want ALLOW POLICY_ALLOW with one would-deny", d.Outcome, d.Reason, d.Audit())
	}
}
