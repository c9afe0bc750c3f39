package v1alpha1

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxGrant is MaxGrantDuration, parsed once.
var maxGrant, _ = time.ParseDuration(MaxGrantDuration)

// End is when the grant stops counting: its duration from activation, or
// its fixed expiresAt, and never later than MaxGrantDuration after
// activation, however far away expiresAt is set. Nil until it can be
// known (a duration not yet activated). The reconciler records it as
// status.expiresAt, which ActiveAt reads.
func (g *CrossOrgGrant) End() *metav1.Time {
	var end time.Time
	switch at := g.Status.ActivatedAt; {
	case g.Spec.ExpiresAt != nil:
		end = g.Spec.ExpiresAt.Time
		if at != nil && at.Add(maxGrant).Before(end) {
			end = at.Add(maxGrant)
		}
	case g.Spec.Duration != nil && at != nil:
		end = at.Add(min(g.Spec.Duration.Duration, maxGrant))
	default:
		return nil
	}
	t := metav1.NewTime(end)
	return &t
}

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

// ResolveStatus derives at now what the manager records in the grant's
// status from the approvals it took from the annotations
// (GrantingApprovedBy, ReceivingApprovedBy): activation on the second
// approval, the end, and the phase. It returns the Ready message. The
// manager and `claiim test` (offline) both call it.
func (g *CrossOrgGrant) ResolveStatus(now time.Time) string {
	st := &g.Status
	both := st.GrantingApprovedBy != "" && st.ReceivingApprovedBy != ""
	if both && st.ActivatedAt == nil && !g.Spec.Revoked {
		at := metav1.NewTime(now)
		st.ActivatedAt = &at
	}
	st.ExpiresAt = g.End()
	switch {
	case g.Spec.Revoked:
		st.Phase = GrantRevoked
		return "the grant was revoked; agents of the receiving org can no longer use these skills"
	case st.ExpiresAt != nil && !now.Before(st.ExpiresAt.Time):
		st.Phase = GrantExpired
		return "the grant expired; create a new grant if it is still needed"
	case both:
		st.Phase = GrantActive
		return fmt.Sprintf("approved by %s (granting) and %s (receiving)", st.GrantingApprovedBy, st.ReceivingApprovedBy)
	}
	st.Phase = GrantPending
	return fmt.Sprintf("waiting for an admin of each org to approve: annotate %s (org %s) and %s (org %s)",
		AnnotationApproveGranting, g.Spec.GrantingOrg, AnnotationApproveReceiving, g.Spec.ReceivingOrg)
}
