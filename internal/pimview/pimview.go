// Package pimview is a PIMRequest as a person sees it, the same in the
// console and in kubectl claiim: its phase now, whose it is, and which
// decisions two-person control leaves them. It asks nothing of the
// apiserver: where RBAC decides, it says so and the caller asks.
package pimview

import (
	"fmt"
	"slices"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// SelfApproval is why nobody approves their own request.
const SelfApproval = "two-person rule: you cannot approve your own request"

// Request is one PIMRequest at a moment: its session and the phase to show.
type Request struct {
	*claiimv1.PIMRequest
	Session claiimv1.PIMSession
	Phase   claiimv1.PIMPhase
	// PendingExpiresAt is when the request lapses unless approved, as the
	// manager recorded it (status.pendingExpiresAt); zero when it did not.
	PendingExpiresAt time.Time
}

// Of is p as it stands at now. A pending request lapses at the deadline
// the manager recorded, whose --pim-pending-ttl nobody else knows: it is
// Expired from then on, before the manager gets round to saying so.
func Of(p *claiimv1.PIMRequest, now time.Time) Request {
	s := p.SessionWithin(now, PendingTTL(p))
	r := Request{PIMRequest: p, Session: s, Phase: Phase(p, s)}
	if t := p.Status.PendingExpiresAt; t != nil {
		r.PendingExpiresAt = t.Time
	}
	return r
}

// PendingTTL is the manager's --pim-pending-ttl as it recorded it on p
// (status.pendingExpiresAt after the request was made); zero when it
// recorded none.
func PendingTTL(p *claiimv1.PIMRequest) time.Duration {
	t := p.Status.PendingExpiresAt
	if t == nil || p.CreationTimestamp.IsZero() || !t.After(p.CreationTimestamp.Time) {
		return 0
	}
	return t.Sub(p.CreationTimestamp.Time)
}

// List is items as they stand at now, newest first.
func List(items []claiimv1.PIMRequest, now time.Time) []Request {
	out := make([]Request, 0, len(items))
	for i := range items {
		out = append(out, Of(&items[i], now))
	}
	slices.SortStableFunc(out, func(a, b Request) int {
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	return out
}

// Phase is the phase to show. The manager's status counts, since only it
// checks the approval's signature (an unsigned approval stays Pending);
// but an Active session the clock or a revocation has since ended shows
// as what it is now, before the manager gets round to saying so.
func Phase(p *claiimv1.PIMRequest, s claiimv1.PIMSession) claiimv1.PIMPhase {
	switch {
	case s.PendingExpired, p.Status.Phase == "":
		return s.Phase
	case p.Status.Phase == claiimv1.PIMActive && s.Phase != claiimv1.PIMActive:
		return s.Phase
	}
	return p.Status.Phase
}

// Mine says whether the request is user's own: they asked for it or it
// would elevate them. Admission refuses them deciding either.
func (r Request) Mine(user string) bool {
	me := claiimv1.Username(user)
	return r.Spec.Requester == me || r.Session.Subject == me
}

// Queued says whether the request waits for user's decision: someone
// else's, still pending.
func (r Request) Queued(user string) bool {
	return !r.Mine(user) && r.Phase == claiimv1.PIMPending
}

// Open says whether a decision can still change the request: pending or
// active.
func (r Request) Open() bool {
	return r.Phase == claiimv1.PIMPending || r.Phase == claiimv1.PIMActive
}

// Approvers are who approved so far, in order, as the manager verified
// them (status.approvals).
func (r Request) Approvers() []claiimv1.Username {
	out := make([]claiimv1.Username, 0, len(r.Status.Approvals))
	for _, a := range r.Status.Approvals {
		out = append(out, a.By)
	}
	return out
}

// Progress is "1 of 2 approvals" while a request that needs several
// approvers waits, or is how far it got when it lapsed; "" otherwise.
func (r Request) Progress() string {
	if r.Required() <= 1 || (r.Phase != claiimv1.PIMPending && !r.Session.PendingExpired) {
		return ""
	}
	return fmt.Sprintf("%d of %d approvals", len(r.Status.Approvals), r.Required())
}

// SoFar is, right after an approval that did not start the session, how
// many of the approvals the request needs are in; "" otherwise (it
// started, or the approval was not recorded).
func SoFar(p *claiimv1.PIMRequest) string {
	recs, err := p.ApprovalRecords()
	if err != nil || len(recs) == 0 || p.Annotations[claiimv1.AnnotationApprovedBy] != "" || len(recs) >= p.Required() {
		return ""
	}
	return fmt.Sprintf("%d of %d approvals; the session starts when another approver approves", len(recs), p.Required())
}

// approvedAlready says whether user's approval is in the request
// (admission counts each person once).
func (r Request) approvedAlready(user string) bool {
	recs, err := r.ApprovalRecords()
	return err == nil && slices.ContainsFunc(recs, func(a claiimv1.PIMApprovalRecord) bool { return string(a.By) == user })
}

// A Right is what two-person control leaves a person for one decision.
// Refused says why not, whatever their RBAC. Otherwise, when
// NeedsApprover is set, RBAC's verb approve on pimrequests decides, and
// Missing is what to say when it refuses; when neither, they may.
type Right struct {
	Refused       string
	NeedsApprover bool
	Missing       string
}

// Rights are user's rights to approve, deny and revoke the request.
func (r Request) Rights(user string) (approve, deny, revoke Right) {
	switch {
	case r.Mine(user):
		approve = Right{Refused: SelfApproval}
		deny = Right{Refused: "two-person rule: you cannot deny your own request; revoke it instead"}
	case r.Session.PendingExpired:
		approve = Right{Refused: "it waited too long for its approvals and expired; request elevation again"}
		deny = approve
	case r.Phase != claiimv1.PIMPending:
		approve = Right{Refused: fmt.Sprintf("already %s", r.Phase)}
		deny = approve
	case r.approvedAlready(user):
		approve = Right{Refused: fmt.Sprintf("you approved already, and each person counts once: it has %s and waits for another approver", r.Progress())}
		deny = Right{NeedsApprover: true,
			Missing: user + " may not deny PIM requests: it needs the RBAC verb approve on pimrequests (the claiim-approver ClusterRole)"}
	default:
		approve = Right{NeedsApprover: true,
			Missing: user + " may not approve PIM requests: it needs the RBAC verb approve on pimrequests (the claiim-approver ClusterRole)"}
		deny = approve
	}
	switch {
	case !r.Open():
		revoke = Right{Refused: fmt.Sprintf("already %s", r.Phase)}
	case r.Spec.Requester == claiimv1.Username(user):
		// The requester may always end their own session.
	default:
		revoke = Right{NeedsApprover: true,
			Missing: "only the requester or an approver (RBAC verb approve on pimrequests) can revoke a PIM session"}
	}
	return approve, deny, revoke
}
