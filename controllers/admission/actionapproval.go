package admission

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// actionApprovalWebhook lets people decide one agent call that a
// RequireApproval policy rule holds. Only the manager makes an
// ActionApproval (its spec signed from the gate's Chron row); a person
// approves by setting claiim.io/approve (consumed here, so a second
// approver sets it again) or denies with claiim.io/deny. Admission stamps
// who from the authenticated user and signs the result: the gate counts
// nothing else. Never the agent's ServiceAccount, never the requester, no
// ServiceAccount at all unless the manager was told to accept it, each
// person once, and only with the RBAC verb approve on actionapprovals.
type actionApprovalWebhook struct{ h *handlers }

var (
	_ admission.Validator[*claiimv1.ActionApproval] = actionApprovalWebhook{}
	_ admission.Defaulter[*claiimv1.ActionApproval] = actionApprovalWebhook{}
)

// approvalStamps are the annotations only admission writes on an
// ActionApproval.
var approvalStamps = []string{claiimv1.AnnotationApprovers, claiimv1.AnnotationApprovedAt, claiimv1.AnnotationDeniedBy,
	claiimv1.AnnotationApprovalAttestation}

// Default stamps a decision: an approval appends the user to the
// approvers and removes the request to approve; a denial records who.
// Both are signed only when they pass the checks ValidateUpdate makes;
// one that fails is left as asked, for ValidateUpdate to refuse in words.
func (w actionApprovalWebhook) Default(ctx context.Context, a *claiimv1.ActionApproval) error {
	req, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	ann := a.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	defer func() { a.SetAnnotations(ann) }()
	if req.Operation == admissionv1.Create {
		for _, k := range append(approvalStamps, claiimv1.AnnotationApprove, claiimv1.AnnotationDeny) {
			delete(ann, k) // nobody decides at birth
		}
		return nil
	}
	if req.Operation != admissionv1.Update {
		return nil
	}
	old := &claiimv1.ActionApproval{}
	if err := w.h.decoder.DecodeRaw(req.OldObject, old); err != nil {
		return errored(http.StatusBadRequest, err)
	}
	for _, k := range approvalStamps {
		if v, ok := old.Annotations[k]; ok {
			ann[k] = v
		} else {
			delete(ann, k)
		}
	}
	user := req.UserInfo.Username
	_, approving := ann[claiimv1.AnnotationApprove]
	_, hadDeny := old.Annotations[claiimv1.AnnotationDeny]
	_, denying := ann[claiimv1.AnnotationDeny]
	denying = denying && !hadDeny
	if approving == denying { // neither, or both at once: ValidateUpdate says which
		return nil
	}
	word := "approve"
	if denying {
		word = "deny"
	}
	if reason, _, err := w.refusal(ctx, req, old, word); err != nil || reason != "" {
		return nil
	}
	if approving {
		delete(ann, claiimv1.AnnotationApprove)
		ann[claiimv1.AnnotationApprovers] = claiimv1.ApproversJSON(append(old.Approvers(), user))
		ann[claiimv1.AnnotationApprovedAt] = w.h.now().UTC().Format(time.RFC3339)
	} else {
		ann[claiimv1.AnnotationDeniedBy] = user
	}
	a.SetAnnotations(ann)
	ann[claiimv1.AnnotationApprovalAttestation] = w.h.Signer.Sign(attest.Approval(a))
	return nil
}

// ValidateCreate admits only what the manager made: a spec signed from
// the gate's Chron row, nothing decided.
func (w actionApprovalWebhook) ValidateCreate(ctx context.Context, a *claiimv1.ActionApproval) (admission.Warnings, error) {
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	if w.h.Signer.Verify(attest.ApprovalRequest(a), a.Annotations[claiimv1.AnnotationRequestAttestation]) != nil {
		return nil, w.h.refuse(ctx, req, chron.KindApprovalRefused, "NOT_FROM_CHRON",
			"ActionApprovals are made by the CLAIIM manager from the gate's approval requests in Chron; an agent's call that needs approval creates one")
	}
	return nil, nil
}

// ValidateDelete admits deletion: a deleted approval allows nothing.
func (w actionApprovalWebhook) ValidateDelete(context.Context, *claiimv1.ActionApproval) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate keeps the call and the decisions final, and admits one
// decision at a time by someone allowed to make it, recorded in Chron.
func (w actionApprovalWebhook) ValidateUpdate(ctx context.Context, old, a *claiimv1.ActionApproval) (admission.Warnings, error) {
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	refuse := func(reason, msg string) (admission.Warnings, error) {
		return nil, w.h.refuse(ctx, req, chron.KindApprovalRefused, reason, msg)
	}
	if !equality.Semantic.DeepEqual(old.Spec, a.Spec) ||
		old.Annotations[claiimv1.AnnotationRequestAttestation] != a.Annotations[claiimv1.AnnotationRequestAttestation] {
		return refuse("SPEC_FINAL", "an ActionApproval names one exact call and cannot be changed")
	}
	if v, had := old.Annotations[claiimv1.AnnotationDeny]; had && v != a.Annotations[claiimv1.AnnotationDeny] {
		return refuse("DECISION_FINAL", "claiim.io/deny is a recorded decision and cannot be changed or removed")
	}
	user := req.UserInfo.Username
	_, asked := a.Annotations[claiimv1.AnnotationApprove]
	_, denied := a.Annotations[claiimv1.AnnotationDeny]
	if asked && denied && old.Annotations[claiimv1.AnnotationDeny] == "" && a.Annotations[claiimv1.AnnotationDeniedBy] == "" {
		return refuse("ONE_DECISION", "set one of claiim.io/approve or claiim.io/deny at a time")
	}
	word := ""
	switch approvers := a.Approvers(); {
	case asked: // Default left it: the approval failed a check
		word = "approve"
	case denied && a.Annotations[claiimv1.AnnotationDeniedBy] == "":
		word = "deny"
	case !slices.Equal(approvers, old.Approvers()):
		if !slices.Equal(approvers, append(old.Approvers(), user)) {
			return refuse("FORGED_IDENTITY", "annotation "+claiimv1.AnnotationApprovers+" is written by admission only")
		}
		word = "approve"
	case old.Annotations[claiimv1.AnnotationDeniedBy] != a.Annotations[claiimv1.AnnotationDeniedBy]:
		if a.Annotations[claiimv1.AnnotationDeniedBy] != user || old.Annotations[claiimv1.AnnotationDeniedBy] != "" {
			return refuse("FORGED_IDENTITY", "annotation "+claiimv1.AnnotationDeniedBy+" is written by admission only")
		}
		word = "deny"
	}
	if word == "" {
		for _, k := range approvalStamps {
			if old.Annotations[k] != a.Annotations[k] {
				return refuse("FORGED_IDENTITY", "annotation "+k+" is written by admission only")
			}
		}
		return nil, nil
	}
	if reason, msg, err := w.refusal(ctx, req, old, word); err != nil || reason != "" {
		if err != nil {
			return nil, errored(http.StatusServiceUnavailable, err)
		}
		return refuse(reason, msg)
	}
	if w.h.Signer.Verify(attest.Approval(a), a.Annotations[claiimv1.AnnotationApprovalAttestation]) != nil {
		return nil, errored(http.StatusServiceUnavailable, fmt.Errorf("the %s was not signed when it was stamped (a check failed there); retry it", word))
	}
	kind, reason, msg := chron.KindApprovalApproved, "APPROVAL_APPROVED", fmt.Sprintf("%s approved %s of agent %s/%s (%d of %d): %s",
		user, a.Spec.Action, a.Namespace, a.Spec.Agent, len(a.Approvers()), a.Spec.ApprovalsRequired, a.Annotations[claiimv1.AnnotationApprove])
	if word == "deny" {
		kind, reason, msg = chron.KindApprovalDenied, "APPROVAL_DENIED", fmt.Sprintf("%s denied %s of agent %s/%s: %s",
			user, a.Spec.Action, a.Namespace, a.Spec.Agent, a.Annotations[claiimv1.AnnotationDeny])
	}
	return nil, w.h.admit(ctx, req, approvalRecord(a, kind, reason, msg))
}

// approvalRecord is a decision's Chron row, linked to the others of the
// approval by its id (request_id) and naming the agent and the call.
func approvalRecord(a *claiimv1.ActionApproval, kind chron.Kind, reason, msg string) *chron.Record {
	return &chron.Record{Kind: kind, Reason: reason, Message: msg, AgentName: a.Spec.Agent, AgentNamespace: a.Namespace,
		AgentUID: a.Spec.AgentUID, Org: string(a.Spec.Org), Anchor: string(a.Spec.Anchor), SkillVersionID: a.Spec.SkillVersionID,
		Context: map[string]any{"approval_id": a.Name, "call": a.Spec.Action, "context_digest": a.Spec.ContextDigest,
			"approvers": a.Approvers(), "approvals_required": a.Spec.ApprovalsRequired}}
}

// refusal says why the user may not approve (or deny) the call, or ""
// when they may.
func (w actionApprovalWebhook) refusal(ctx context.Context, req admission.Request, old *claiimv1.ActionApproval, word string) (string, string, error) {
	user, sp := req.UserInfo.Username, &old.Spec
	if w.h.Signer.Verify(attest.ApprovalRequest(old), old.Annotations[claiimv1.AnnotationRequestAttestation]) != nil {
		return "NOT_FROM_CHRON", "this ActionApproval was not made by the CLAIIM manager from a gate's request; it can never be approved", nil
	}
	st := old.State(w.h.now())
	if st.Phase != claiimv1.ApprovalPending {
		return "DECISION_FINAL", fmt.Sprintf("this approval is already %s; the agent asks again for a new one", st.Phase), nil
	}
	if sp.AgentServiceAccount != "" && claiimv1.SamePerson(claiimv1.Username(user), claiimv1.Username(sp.AgentServiceAccount)) {
		return "AGENT_APPROVAL", fmt.Sprintf("%s is the agent's own ServiceAccount: an agent never approves its own calls", user), nil
	}
	if claiimv1.SamePerson(claiimv1.Username(user), claiimv1.Username(sp.Requester)) {
		return "SELF_APPROVAL", "you made this call: approval needs another person", nil
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(user)), serviceAccountPrefix) && !slices.Contains(w.h.ApproverServiceAccounts, user) {
		return "SERVICEACCOUNT_APPROVER", fmt.Sprintf("%s is a ServiceAccount, and approvals come from people: ask a person with the claiim-action-approver role", user), nil
	}
	if word == "approve" && slices.ContainsFunc(st.Approvers, func(a string) bool { return claiimv1.SamePerson(claiimv1.Username(a), claiimv1.Username(user)) }) {
		return "SAME_APPROVER", fmt.Sprintf("you already approved this call; it needs %d distinct people: ask another approver (the agent's anchor %s counts as one)",
			sp.ApprovalsRequired, sp.Anchor), nil
	}
	ok, err := w.h.canIn(ctx, req, "approve", "actionapprovals", old.Namespace, old.Name)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "NOT_AN_APPROVER", fmt.Sprintf("%s may not %s agents' calls in namespace %s: it needs the RBAC verb 'approve' on actionapprovals.claiim.io (the claiim-action-approver ClusterRole)",
			user, word, old.Namespace), nil
	}
	return "", "", nil
}
