package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SamePerson reports whether two usernames name the same person for
// two-person control: equal once surrounding spaces are trimmed and case
// is folded. Two authenticators may spell one person's email differently
// (Admin@claiim.io, admin@claiim.io); counting such spellings as two
// people would let one person approve their own request, or count twice.
// It errs towards "the same": two people whose usernames differ only in
// case cannot approve each other's requests.
func SamePerson(a, b Username) bool {
	return strings.EqualFold(strings.TrimSpace(string(a)), strings.TrimSpace(string(b)))
}

// +kubebuilder:object:generate=false

// PIMSession is the state of an elevation, derived from the request and
// the decisions admission stamped on it.
type PIMSession struct {
	Phase      PIMPhase
	Subject    Username
	ApprovedBy Username
	ApprovedAt time.Time // zero unless approved
	ExpiresAt  time.Time // zero unless approved
	// PendingExpired: nobody approved in time (SessionWithin); the phase
	// is Expired and no approval can start the session any more.
	PendingExpired bool
}

// Session derives the session's state at now. Both the admission webhook
// (is this user elevated?) and the reconciler (status) use it, so an
// expired session stops working at its expiry even before the status says
// so. Revocation (or deletion) wins over everything; an approval whose time can't be
// read counts for nothing (fail closed).
func (p *PIMRequest) Session(now time.Time) PIMSession {
	s := PIMSession{Phase: PIMPending, Subject: p.Spec.Subject}
	if s.Subject == "" {
		s.Subject = p.Spec.Requester
	}
	a := p.Annotations
	switch {
	case p.DeletionTimestamp != nil, a[AnnotationRevokedBy] != "":
		// Deleting a request ends its session at once, even while a
		// finalizer keeps the object around.
		s.Phase = PIMRevoked
	case a[AnnotationDeniedBy] != "":
		s.Phase = PIMDenied
		s.ApprovedBy = Username(a[AnnotationDeniedBy])
	case a[AnnotationApprovedBy] != "":
		at, err := time.Parse(time.RFC3339, a[AnnotationApprovedAt])
		if err != nil {
			return s
		}
		d := time.Hour
		if p.Spec.Duration != nil {
			d = p.Spec.Duration.Duration
		}
		s.ApprovedBy, s.ApprovedAt, s.ExpiresAt = Username(a[AnnotationApprovedBy]), at, at.Add(d)
		s.Phase = PIMActive
		if !now.Before(s.ExpiresAt) {
			s.Phase = PIMExpired
		}
	}
	return s
}

// Elevates reports whether the request gives user an active session at now.
func (p *PIMRequest) Elevates(user string, now time.Time) bool {
	s := p.Session(now)
	return s.Phase == PIMActive && string(s.Subject) == user && user != ""
}

// Required is how many distinct approvers the request needs (at least 1).
func (p *PIMRequest) Required() int {
	if p.Spec.ApprovalsRequired < 1 {
		return 1
	}
	return int(p.Spec.ApprovalsRequired)
}

// PendingDeadline is when the request lapses unless approved: ttl after
// the apiserver stored it. Zero when ttl is zero or the request was never
// stored.
func (p *PIMRequest) PendingDeadline(ttl time.Duration) time.Time {
	if ttl <= 0 || p.CreationTimestamp.IsZero() {
		return time.Time{}
	}
	return p.CreationTimestamp.Add(ttl)
}

// SessionWithin is Session with a pending request lapsing pendingTTL
// after it was made: its phase turns Expired (PendingExpired) and no
// approval can start it any more. The manager and admission use it with
// the manager's --pim-pending-ttl.
func (p *PIMRequest) SessionWithin(now time.Time, pendingTTL time.Duration) PIMSession {
	s := p.Session(now)
	if s.Phase == PIMPending {
		if d := p.PendingDeadline(pendingTTL); !d.IsZero() && !now.Before(d) {
			s.Phase, s.PendingExpired = PIMExpired, true
		}
	}
	return s
}

// ApprovalRecords reads AnnotationApprovals, unverified (gate/attest
// verifies each). More than MaxPIMApprovalsRequired entries, or an
// unreadable list, is an error: nothing in it counts.
func (p *PIMRequest) ApprovalRecords() ([]PIMApprovalRecord, error) {
	v, ok := p.Annotations[AnnotationApprovals]
	if !ok || v == "" {
		return nil, nil
	}
	var out []PIMApprovalRecord
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("annotation %s is not a list of approvals: %w", AnnotationApprovals, err)
	}
	if len(out) > MaxPIMApprovalsRequired {
		return nil, fmt.Errorf("annotation %s holds %d approvals, more than the %d any request may need", AnnotationApprovals, len(out), MaxPIMApprovalsRequired)
	}
	return out, nil
}

// SetApprovalRecords writes AnnotationApprovals.
func (p *PIMRequest) SetApprovalRecords(recs []PIMApprovalRecord) {
	b, _ := json.Marshal(recs) // strings only: always marshals
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[AnnotationApprovals] = string(b)
}
