package v1alpha1

import (
	"time"
)

// +kubebuilder:object:generate=false

// PIMSession is the state of an elevation, derived from the request and
// the decisions admission stamped on it.
type PIMSession struct {
	Phase      PIMPhase
	Subject    Username
	ApprovedBy Username
	ApprovedAt time.Time // zero unless approved
	ExpiresAt  time.Time // zero unless approved
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
