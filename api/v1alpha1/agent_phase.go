package v1alpha1

import "fmt"

// Decommissioned reports whether the agent is decommissioned: its spec
// asks for it, or the manager already recorded it. Decommissioning is
// terminal, so the recorded phase wins over whatever the spec says later.
func (a *Agent) Decommissioned() bool {
	return a.Spec.Lifecycle == LifecycleDecommissioned || a.Status.Phase == AgentDecommissioned
}

// AnchorAccepted reports whether the agent's current accountability
// anchor has accepted it: the acceptance annotation names that anchor, so
// a new anchor must accept anew.
func (a *Agent) AnchorAccepted() bool {
	return a.Annotations[AnnotationAnchorAccepted] == string(a.Spec.AccountabilityAnchor)
}

// LifecyclePhase is the phase the agent's own fields call for, in this
// order: Decommissioned, Suspended (a person's explicit choice shows over
// anything else), Inactive until the anchor accepts, otherwise Active.
// The manager reports Pending instead of Inactive or Active while the org
// or the pinned skill version doesn't resolve; the gate lets the agent act
// only when this is Active and the manager recorded Active for the current
// generation.
func (a *Agent) LifecyclePhase() AgentPhase {
	switch {
	case a.Decommissioned():
		return AgentDecommissioned
	case a.Spec.Lifecycle == LifecycleSuspended:
		return AgentSuspended
	case !a.AnchorAccepted():
		return AgentInactive
	}
	return AgentActive
}

// PinProblem says why the skill version a is pinned to does not resolve,
// as a reason and a message, or "" when it does: skill is the pinned
// skill (nil when it does not exist), granted whether a grant active now
// lets a's org use it (asked only for another org's skill). The agent
// reconciler reports the agent Pending for it; a what-if derives the
// same phase for a proposed change.
func (a *Agent) PinProblem(skill *Skill, granted bool) (string, string) {
	ref := a.Spec.SkillRef
	switch {
	case skill == nil:
		return ReasonSkillNotFound, fmt.Sprintf("Skill %q does not exist; create it or point spec.skillRef at an existing skill", ref.Name)
	case skill.Spec.Org != a.Spec.Org && !granted:
		return ReasonSkillOrgMismatch, fmt.Sprintf(
			"Skill %q belongs to org %q, not %q; use a skill of the agent's own org, or have both orgs approve a CrossOrgGrant",
			ref.Name, skill.Spec.Org, a.Spec.Org)
	case skill.Version(ref.Version) == nil:
		return ReasonSkillVersionNotFound, fmt.Sprintf(
			"Skill %q has no version %d (it has versions 1 to %d); pin a published version",
			ref.Name, ref.Version, len(skill.Spec.Versions))
	}
	return "", ""
}
