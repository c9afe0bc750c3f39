package v1alpha1

import (
	"encoding/json"
	"slices"
	"time"
)

// MaxApprovers bounds the approvers list (ApprovalsRequired is at most 2).
const MaxApprovers = 2

// +kubebuilder:object:generate=false

// ApprovalState is an ActionApproval's state at a time, from its stamped
// annotations. It does not check their signature: the gate does
// (gate/decide), and counts nothing unsigned.
type ApprovalState struct {
	Phase     ApprovalPhase
	Approvers []string // distinct, in order
	DeniedBy  string
}

// Approvers are the distinct people admission recorded as approvers (one
// person whatever the spelling: SamePerson); a list that cannot be read
// counts as nobody (fail closed).
func (a *ActionApproval) Approvers() []string {
	raw := a.Annotations[AnnotationApprovers]
	if raw == "" {
		return nil
	}
	var users []string
	if err := json.Unmarshal([]byte(raw), &users); err != nil || len(users) > MaxApprovers {
		return nil
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if u != "" && !slices.ContainsFunc(out, func(o string) bool { return SamePerson(Username(o), Username(u)) }) {
			out = append(out, u)
		}
	}
	return out
}

// ApproversJSON encodes users for AnnotationApprovers.
func ApproversJSON(users []string) string {
	b, _ := json.Marshal(users)
	return string(b)
}

// State derives the request's phase at now: a denial wins, then expiry,
// then enough distinct approvers.
func (a *ActionApproval) State(now time.Time) ApprovalState {
	s := ApprovalState{Phase: ApprovalPending, Approvers: a.Approvers(), DeniedBy: a.Annotations[AnnotationDeniedBy]}
	switch {
	case s.DeniedBy != "":
		s.Phase = ApprovalDenied
	case !now.Before(a.Spec.ExpiresAt.Time):
		s.Phase = ApprovalExpired
	case len(s.Approvers) >= int(max(a.Spec.ApprovalsRequired, 1)):
		s.Phase = ApprovalApproved
	}
	return s
}
