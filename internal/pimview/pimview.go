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
}

// Of is p as it stands at now.
func Of(p *claiimv1.PIMRequest, now time.Time) Request {
	s := p.Session(now)
	return Request{PIMRequest: p, Session: s, Phase: Phase(p, s)}
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
	case p.Status.Phase == "":
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
	case r.Phase != claiimv1.PIMPending:
		approve = Right{Refused: fmt.Sprintf("already %s", r.Phase)}
		deny = approve
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
