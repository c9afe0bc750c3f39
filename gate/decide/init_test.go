package decide

import (
	"strings"
	"testing"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func TestInit(t *testing.T) {
	in := seedInputs()
	in.Skills[0].Spec.DisplayName = "Deploy Bot"
	in.Skills[0].Spec.Versions[0].SystemPrompt = "You deploy to staging."
	suspended := activeAgent("paused", "engineering", "deploy-bot")
	suspended.Spec.Lifecycle = claiimv1.LifecycleSuspended
	unpublished := activeAgent("ahead", "engineering", "deploy-bot")
	unpublished.Spec.SkillRef.Version = 2
	in.Agents = append(in.Agents, suspended, unpublished)
	s := buildSigned(in)
	agent := func(name string) *Agent {
		a, ok := s.Agent("default", name)
		if !ok {
			t.Fatalf("no agent %s", name)
		}
		return a
	}
	sv, _ := s.PinnedVersion(agent("bot"))

	d := Init(s, agent("bot"), sv.ID, now)
	if d.Outcome != Allow || d.Reason != ReasonAgentActive || d.SkillVersion != sv {
		t.Fatalf("active agent: %s %s %+v", d.Outcome, d.Reason, d.SkillVersion)
	}
	if sv.DisplayName != "Deploy Bot" || sv.AgentEmail != "deploy-bot@yourcompany.com" || sv.SystemPrompt != "You deploy to staging." {
		t.Fatalf("the snapshot dropped seed data: %+v", sv)
	}
	if d = Init(s, agent("bot"), "deploy-bot-v9-00000000", now); d.Outcome != Allow || !strings.Contains(d.Message, ReasonSkillVersionMismatch) {
		t.Fatalf("another version: %s %s", d.Outcome, d.Message)
	}
	for name, reason := range map[string]string{"paused": ReasonAgentInactive, "ahead": ReasonAgentInactive} {
		if d = Init(s, agent(name), "", now); d.Outcome != Deny || d.Reason != reason || d.Message == "" {
			t.Errorf("%s: %s %s %q, want DENY %s with words", name, d.Outcome, d.Reason, d.Message, reason)
		}
	}
	if d = Init(s, nil, "", now); d.Outcome != Deny || d.Reason != ReasonUnauthenticated {
		t.Errorf("no agent: %s %s", d.Outcome, d.Reason)
	}
}
