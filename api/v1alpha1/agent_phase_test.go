package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAgentLifecyclePhase(t *testing.T) {
	const anchor = "admin@claiim.io"
	accepted := map[string]string{AnnotationAnchorAccepted: anchor}
	cases := []struct {
		name      string
		lifecycle AgentLifecycle
		recorded  AgentPhase
		ann       map[string]string
		anchor    Username
		want      AgentPhase
		decomm    bool
		accepted  bool
	}{
		{"accepted and active", LifecycleActive, AgentActive, accepted, anchor, AgentActive, false, true},
		{"the default lifecycle is active", "", "", accepted, anchor, AgentActive, false, true},
		{"not accepted yet", LifecycleActive, "", nil, anchor, AgentInactive, false, false},
		{"accepted by someone else", LifecycleActive, AgentActive, map[string]string{AnnotationAnchorAccepted: "peer@claiim.io"}, anchor, AgentInactive, false, false},
		{"anchor changed after acceptance", LifecycleActive, AgentActive, accepted, "peer@claiim.io", AgentInactive, false, false},
		{"suspended shows over a missing acceptance", LifecycleSuspended, AgentInactive, nil, anchor, AgentSuspended, false, false},
		{"decommissioned by spec", LifecycleDecommissioned, AgentActive, accepted, anchor, AgentDecommissioned, true, true},
		{"decommissioned as recorded, whatever the spec says now", LifecycleActive, AgentDecommissioned, accepted, anchor, AgentDecommissioned, true, true},
		{"decommissioned shows over suspended", LifecycleSuspended, AgentDecommissioned, nil, anchor, AgentDecommissioned, true, false},
	}
	for _, c := range cases {
		a := &Agent{ObjectMeta: metav1.ObjectMeta{Annotations: c.ann},
			Spec:   AgentSpec{Org: "engineering", AccountabilityAnchor: c.anchor, Lifecycle: c.lifecycle},
			Status: AgentStatus{Phase: c.recorded}}
		if got := a.LifecyclePhase(); got != c.want {
			t.Errorf("%s: LifecyclePhase = %s, want %s", c.name, got, c.want)
		}
		if got := a.Decommissioned(); got != c.decomm {
			t.Errorf("%s: Decommissioned = %v, want %v", c.name, got, c.decomm)
		}
		if got := a.AnchorAccepted(); got != c.accepted {
			t.Errorf("%s: AnchorAccepted = %v, want %v", c.name, got, c.accepted)
		}
	}
}

func TestPinProblem(t *testing.T) {
	a := &Agent{Spec: AgentSpec{Org: "engineering", SkillRef: SkillRef{Name: "deploy", Version: 2}}}
	own := &Skill{Spec: SkillSpec{Org: "engineering", Versions: []SkillVersion{{Version: 1}, {Version: 2}}}}
	old := &Skill{Spec: SkillSpec{Org: "engineering", Versions: []SkillVersion{{Version: 1}}}}
	theirs := &Skill{Spec: SkillSpec{Org: "finance", Versions: []SkillVersion{{Version: 2}}}}
	for _, c := range []struct {
		name    string
		skill   *Skill
		granted bool
		want    string
	}{
		{"resolves", own, false, ""},
		{"no skill", nil, true, ReasonSkillNotFound},
		{"no such version", old, false, ReasonSkillVersionNotFound},
		{"another org's without a grant", theirs, false, ReasonSkillOrgMismatch},
		{"another org's under a grant", theirs, true, ""},
	} {
		if got, msg := a.PinProblem(c.skill, c.granted); got != c.want || (got == "") != (msg == "") {
			t.Errorf("%s: got %q (%q), want %q", c.name, got, msg, c.want)
		}
	}
}
