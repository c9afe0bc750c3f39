package decide

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// admittedInputs is the seed's world plus a finance agent and a Deny of
// the engineering org, all as admission admitted them.
func admittedInputs() Inputs {
	in := seedInputs()
	in.Agents = append(in.Agents, activeAgent("ledger-bot", "finance", "ledger"))
	in.Policies = append(in.Policies, rulePolicy("eng-no-rollback", "engineering", claiimv1.PolicyEffectDeny, "deploy:rollback"))
	in.Policies[1].Generation = 2
	return signed(in)
}

func ask(t *testing.T, s *Snapshot, agent, action string) Decision {
	t.Helper()
	a, ok := s.Agent("default", agent)
	if !ok {
		t.Fatalf("no agent %s", agent)
	}
	req := Request{Agent: a, Action: action, Now: now}
	if sv, ok := s.PinnedVersion(a); ok {
		req.SkillVersionID = sv.ID
	}
	return Decide(s, req)
}

func policyNamed(in *Inputs, name string) *claiimv1.Policy {
	for i := range in.Policies {
		if in.Policies[i].Name == name {
			return &in.Policies[i]
		}
	}
	panic(name)
}

// A change made past admission (the webhooks deleted or bypassed) never
// widens what agents may do: every decision that depends on the changed
// object is DENY NOT_ADMITTED, saying what to re-apply; decisions that do
// not depend on it are untouched.
func TestChangedPastAdmissionDenies(t *testing.T) {
	type query struct {
		agent, action string
		reason        string // NOT_ADMITTED, or what the gate answers as before
	}
	for _, c := range []struct {
		name   string
		change func(in *Inputs)
		asks   []query
		names  string // the object the refusal names
	}{
		{"a Deny for every org turned into an Allow", func(in *Inputs) {
			p := policyNamed(in, "no-production-deploys")
			p.Spec.Rules[0].Effect, p.Generation = claiimv1.PolicyEffectAllow, p.Generation+1
		}, []query{{"bot", "deploy:production", ReasonNotAdmitted}, {"ledger-bot", "ledger:read", ReasonNotAdmitted}}, "Policy no-production-deploys generation 4"},
		{"an org's Deny dropped", func(in *Inputs) {
			p := policyNamed(in, "eng-no-rollback")
			p.Spec.Rules, p.Generation = nil, p.Generation+1
		}, []query{{"bot", "deploy:rollback", ReasonNotAdmitted}, {"platform-bot", "deploy:staging", ReasonNotAdmitted},
			{"ledger-bot", "ledger:read", ReasonOwnAIOrg}}, "Policy eng-no-rollback generation 3"},
		{"a published skill version widened", func(in *Inputs) {
			v := &in.Skills[0].Spec.Versions[0]
			v.AllowedActions, in.Skills[0].Generation = append(v.AllowedActions, "deploy:qa"), in.Skills[0].Generation+1
		}, []query{{"bot", "deploy:qa", ReasonNotAdmitted}, {"ledger-bot", "ledger:read", ReasonOwnAIOrg}}, "Skill deploy-bot"},
		{"an org moved out from under its parent's Denies", func(in *Inputs) {
			in.Orgs[1].Spec.Parent, in.Orgs[1].Generation = "", in.Orgs[1].Generation+1
		}, []query{{"platform-bot", "deploy:rollback", ReasonNotAdmitted}, {"bot", "deploy:staging", ReasonOwnAIOrg}}, "AIOrg platform"},
		{"an agent relabelled", func(in *Inputs) { in.Agents[0].Labels["tier"] = "dev" },
			[]query{{"bot", "deploy:staging", ReasonNotAdmitted}, {"ledger-bot", "ledger:read", ReasonOwnAIOrg}}, "Agent default/bot generation 1"},
		{"an agent's stamp removed", func(in *Inputs) { delete(in.Agents[0].Annotations, claiimv1.AnnotationAdmitted) },
			[]query{{"bot", "deploy:staging", ReasonNotAdmitted}}, "carries no admission stamp"},
		{"a grant that admission never saw", func(in *Inputs) {
			in.Agents[0].Spec.SkillRef.Name = "ledger"
			stamp(&in.Agents[0])
			exp := metav1.NewTime(now.Add(time.Hour))
			g := claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "fin-to-eng"},
				Spec:   claiimv1.CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}},
				Status: claiimv1.CrossOrgGrantStatus{Phase: claiimv1.GrantActive, ExpiresAt: &exp}}
			g.Status.Attestation = testSigner.Sign(attest.Grant(&g))
			in.Grants = append(in.Grants, g)
		}, []query{{"bot", "ledger:read", ReasonNotAdmitted}, {"ledger-bot", "ledger:read", ReasonOwnAIOrg}}, "CrossOrgGrant fin-to-eng"},
		{"an old admitted spec and its stamp copied back", func(in *Inputs) {
			p := policyNamed(in, "eng-no-rollback")
			old := p.DeepCopy()
			p.Spec.Rules[0].Actions = append(p.Spec.Rules[0].Actions, "deploy:hotfix") // admitted: gen 3
			p.Generation++
			v, _ := attest.NewStamp(testSigner, p, old, time.Now())
			p.Annotations[claiimv1.AnnotationAdmitted] = v
			*p = *old
			p.Generation = 4 // the write that put it back
		}, []query{{"bot", "deploy:rollback", ReasonNotAdmitted}}, "generation 4 moved on past the last write admission stamped (a write over generation 2)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := admittedInputs()
			before := Build(in)
			c.change(&in)
			s := Build(in)
			for _, q := range c.asks {
				d := ask(t, s, q.agent, q.action)
				if d.Reason != q.reason {
					t.Errorf("%s %s = %s %s (%s), want %s", q.agent, q.action, d.Outcome, d.Reason, d.Message, q.reason)
				}
				if q.reason != ReasonNotAdmitted {
					continue
				}
				if d.Outcome != Deny || !strings.Contains(d.Message, c.names) || !strings.Contains(d.Message, "re-apply it under a PIM session") {
					t.Errorf("%s %s: %s %q does not name %q and say what to do", q.agent, q.action, d.Outcome, d.Message, c.names)
				}
				if b := ask(t, before, q.agent, q.action); b.Reason == ReasonNotAdmitted {
					t.Errorf("%s %s was NOT_ADMITTED before the change", q.agent, q.action)
				}
			}
		})
	}
}

// Forged anchor acceptance (an annotation written past admission) does
// not make an agent Active.
func TestForgedAcceptanceDoesNotActivate(t *testing.T) {
	in := seedInputs()
	delete(in.Agents[0].Annotations, claiimv1.AnnotationAnchorAccepted)
	in = signed(in)
	if d := ask(t, Build(in), "bot", "deploy:staging"); d.Reason != ReasonAgentInactive {
		t.Fatalf("not accepted: %s %s", d.Outcome, d.Reason)
	}
	in.Agents[0].Annotations[claiimv1.AnnotationAnchorAccepted] = "admin@claiim.io"
	s := Build(in)
	if d := ask(t, s, "bot", "deploy:staging"); d.Reason != ReasonNotAdmitted {
		t.Errorf("forged acceptance: %s %s (%s)", d.Outcome, d.Reason, d.Message)
	}
	if a, _ := s.Agent("default", "bot"); a.Active || a.Inactive == "" {
		t.Errorf("/v/init would call the agent active: %+v", a)
	}
}

// Without keys nothing is admitted; a gate told to ignore admission (a
// cluster without CLAIIM's webhooks, tests only) uses objects as they are.
func TestAdmissionKeysAndOptOut(t *testing.T) {
	in := signed(seedInputs())
	in.Keys = nil
	if d := ask(t, Build(in), "bot", "deploy:staging"); d.Reason != ReasonNotAdmitted || !strings.Contains(d.Message, "no attestation keys") {
		t.Errorf("no keys: %s %s", d.Reason, d.Message)
	}
	in = seedInputs()
	for i := range in.Agents {
		in.Agents[i].Status.Attestation = testSigner.Sign(attest.Agent(&in.Agents[i]))
	}
	in.Keys, in.IgnoreAdmission = testSigner.Public(), true
	if d := ask(t, Build(in), "bot", "deploy:staging"); d.Outcome != Allow {
		t.Errorf("admission ignored: %s %s %s", d.Outcome, d.Reason, d.Message)
	}
}
