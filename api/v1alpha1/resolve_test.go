package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPinProblemAndResolvedPhase: the derivation the manager and `claiim
// test` share, in its order: a person's suspension over a missing
// reference, a missing skill over an org mismatch over a missing version.
func TestPinProblemAndResolvedPhase(t *testing.T) {
	skill := &Skill{ObjectMeta: metav1.ObjectMeta{Name: "deploy-bot"}, Spec: SkillSpec{Org: "engineering", Versions: []SkillVersion{{Version: 1}}}}
	other := &Skill{ObjectMeta: metav1.ObjectMeta{Name: "ledger"}, Spec: SkillSpec{Org: "finance", Versions: []SkillVersion{{Version: 1}}}}
	agent := func(lifecycle AgentLifecycle, version int32) *Agent {
		return &Agent{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationAnchorAccepted: "admin@claiim.io"}},
			Spec: AgentSpec{Org: "engineering", AccountabilityAnchor: "admin@claiim.io", SkillRef: SkillRef{Name: "deploy-bot", Version: version}, Lifecycle: lifecycle}}
	}
	for _, c := range []struct {
		name    string
		a       *Agent
		skill   *Skill
		granted bool
		phase   AgentPhase
		reason  string
	}{
		{"resolved and accepted", agent(LifecycleActive, 1), skill, false, AgentActive, ReasonReconciled},
		{"no such skill", agent(LifecycleActive, 1), nil, false, AgentPending, ReasonSkillNotFound},
		{"no such version", agent(LifecycleActive, 2), skill, false, AgentPending, ReasonSkillVersionNotFound},
		{"another org's skill without a grant", agent(LifecycleActive, 1), other, false, AgentPending, ReasonSkillOrgMismatch},
		{"another org's skill under a grant", agent(LifecycleActive, 1), other, true, AgentActive, ReasonReconciled},
		{"suspended shows over a missing skill", agent(LifecycleSuspended, 1), nil, false, AgentSuspended, ReasonSuspended},
	} {
		reason, msg := c.a.PinProblem(c.skill, c.granted)
		phase, why, _ := c.a.ResolvedPhase(reason, msg)
		if phase != c.phase || why != c.reason {
			t.Errorf("%s: %s %s, want %s %s", c.name, phase, why, c.phase, c.reason)
		}
	}
}

func TestGrantResolveStatus(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	g := &CrossOrgGrant{Spec: CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"},
		Duration: &metav1.Duration{Duration: time.Hour}}}
	if g.ResolveStatus(now); g.Status.Phase != GrantPending || g.Status.ActivatedAt != nil {
		t.Fatalf("one side unapproved: %+v", g.Status)
	}
	g.Status.GrantingApprovedBy, g.Status.ReceivingApprovedBy = "fin-admin", "eng-admin"
	if g.ResolveStatus(now); g.Status.Phase != GrantActive || !g.ActiveAt(now) || !g.Status.ExpiresAt.Equal(&metav1.Time{Time: now.Add(time.Hour)}) {
		t.Fatalf("both approved: %+v", g.Status)
	}
	if g.ResolveStatus(now.Add(time.Hour)); g.Status.Phase != GrantExpired {
		t.Fatalf("an hour later: %s", g.Status.Phase)
	}
	g.Spec.Revoked = true
	if g.ResolveStatus(now); g.Status.Phase != GrantRevoked {
		t.Fatalf("revoked: %s", g.Status.Phase)
	}
}
