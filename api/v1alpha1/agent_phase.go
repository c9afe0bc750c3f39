package v1alpha1

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
