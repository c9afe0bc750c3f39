package v1alpha1

import (
	"fmt"
	"time"
)

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

// ResolvedPhase is the phase the manager records for the agent, with the
// Ready condition's reason and message: its own lifecycle phase, with
// Pending in place of Inactive or Active while pendReason says a reference
// is missing (PinProblem; a person's explicit decommission or suspension
// shows over it). The manager and `claiim test` (which derives status
// offline) both call it; call it before the status phase is overwritten:
// a recorded decommissioning is terminal.
func (a *Agent) ResolvedPhase(pendReason, pendMsg string) (AgentPhase, string, string) {
	switch p := a.LifecyclePhase(); {
	case p == AgentDecommissioned:
		return AgentDecommissioned, ReasonDecommissioned,
			"the agent is decommissioned and its token revoked for good; its Chron trail is kept. Provision a new agent to act again"
	case p == AgentSuspended:
		return AgentSuspended, ReasonSuspended,
			"the agent is suspended: the gate denies every action until spec.lifecycle is set back to Active"
	case pendReason != "":
		return AgentPending, pendReason, pendMsg
	case p == AgentInactive:
		return AgentInactive, ReasonAnchorNotAccepted, fmt.Sprintf(
			"waiting for the accountability anchor %q to accept the assignment: they annotate the agent with %s=%s",
			a.Spec.AccountabilityAnchor, AnnotationAnchorAccepted, a.Spec.AccountabilityAnchor)
	default:
		msg := fmt.Sprintf("active on skill %s version %d (%s), accountable: %s",
			a.Spec.SkillRef.Name, a.Spec.SkillRef.Version, a.Status.SkillVersionID, a.Spec.AccountabilityAnchor)
		if p := a.Status.PreviousSkillVersion; p != nil {
			msg += fmt.Sprintf("; after the re-pin the gate still accepts the previous version %s until %s: restart or re-init the agent's pods to use %s",
				p.ID, p.Until.UTC().Format(time.RFC3339), a.Status.SkillVersionID)
		}
		return AgentActive, ReasonReconciled, msg
	}
}

// PinProblem says why the skill version the agent is pinned to cannot be
// used, as a Ready reason and message ("" when it can): skill is the
// Skill its spec.skillRef names (nil when there is none), granted whether
// an active CrossOrgGrant lends it when it is another org's.
func (a *Agent) PinProblem(skill *Skill, granted bool) (reason, msg string) {
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
