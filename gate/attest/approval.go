package attest

import (
	"strconv"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// ApprovalRequest covers the exact call an ActionApproval names, as the
// manager copied it from the gate's Chron row, before the object exists
// (so no UID): an ActionApproval anyone else wrote is never approvable.
func ApprovalRequest(a *claiimv1.ActionApproval) Message {
	return message("ActionApprovalRequest", approvalFields(a)...)
}

// Approval covers an ActionApproval's decisions as admission stamped them
// after checking each approver (a person, with the verb approve, not the
// agent nor the requester, distinct): the exact call, who approved, who
// denied. The gate counts no approver without it.
func Approval(a *claiimv1.ActionApproval) Message {
	f := append(approvalFields(a), string(a.UID), a.Annotations[claiimv1.AnnotationApprovers], a.Annotations[claiimv1.AnnotationDeniedBy])
	return message("ActionApproval", f...)
}

func approvalFields(a *claiimv1.ActionApproval) []string {
	s := &a.Spec
	return []string{a.Namespace, a.Name, s.Agent, s.AgentUID, s.AgentServiceAccount, string(s.Org), string(s.Anchor),
		s.Requester, s.Action, s.ContextDigest, s.Context, s.SkillVersionID, s.Policy, s.Rule,
		strconv.Itoa(int(s.ApprovalsRequired)), strconv.FormatInt(s.RequestedAt.Unix(), 10), strconv.FormatInt(s.ExpiresAt.Unix(), 10)}
}
