package v1alpha1

import (
	"slices"
	"time"
)

// ActiveAt reports whether the grant counts at t: the manager recorded it
// Active (both sides approved), it has not been revoked since, and t is
// before its recorded end. Revocation and expiry take effect at once,
// before the status says so, as an expired PIM session does. The agent
// reconciler, admission and the gate's decision all ask this.
func (g *CrossOrgGrant) ActiveAt(t time.Time) bool {
	return g.Status.Phase == GrantActive && !g.Spec.Revoked &&
		g.Status.ExpiresAt != nil && t.Before(g.Status.ExpiresAt.Time)
}

// Covers reports whether the grant shares skill, a skill of org from, with
// the agents of org to. Whether it counts now is ActiveAt's question.
func (g *CrossOrgGrant) Covers(skill string, from, to OrgName) bool {
	return g.Spec.GrantingOrg == from && g.Spec.ReceivingOrg == to && slices.Contains(g.Spec.Skills, skill)
}
