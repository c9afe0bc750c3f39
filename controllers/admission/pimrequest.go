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

// pimRequestWebhook enforces two-person control on PIMRequests: the
// requester is stamped from the authenticated user, and a second person
// with the RBAC verb `approve` decides. It is not under PIM itself:
// asking for elevation is what one does without it.
type pimRequestWebhook struct{ h *handlers }

var (
	_ admission.Validator[*claiimv1.PIMRequest] = pimRequestWebhook{}
	_ admission.Defaulter[*claiimv1.PIMRequest] = pimRequestWebhook{}
)

// stamped are the annotations only admission writes.
var stamped = []string{claiimv1.AnnotationApprovedBy, claiimv1.AnnotationApprovedAt, claiimv1.AnnotationDeniedBy, claiimv1.AnnotationRevokedBy,
	claiimv1.AnnotationApprovalAttestation, claiimv1.AnnotationApprovals}

// decisions pair what a person sets with what admission stamps for it.
var decisions = []struct{ set, by string }{
	{claiimv1.AnnotationApprove, claiimv1.AnnotationApprovedBy},
	{claiimv1.AnnotationDeny, claiimv1.AnnotationDeniedBy},
	{claiimv1.AnnotationRevoke, claiimv1.AnnotationRevokedBy},
}

// Default stamps identities from the authenticated user: the requester on
// create, and who decided when a decision annotation appears. Values a
// user sends for these are overwritten.
func (w pimRequestWebhook) Default(ctx context.Context, p *claiimv1.PIMRequest) error {
	req, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	user := req.UserInfo.Username
	ann := p.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	switch req.Operation {
	case admissionv1.Create:
		p.Spec.Requester = claiimv1.Username(user)
		if p.Spec.Subject == "" {
			p.Spec.Subject = claiimv1.Username(user)
		}
		for _, k := range stamped {
			delete(ann, k)
		}
		for _, d := range decisions { // nobody decides their own request at birth
			delete(ann, d.set)
		}
	case admissionv1.Update:
		old := &claiimv1.PIMRequest{}
		if err := w.h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return errored(http.StatusBadRequest, err)
		}
		for _, k := range stamped {
			if v, ok := old.Annotations[k]; ok {
				ann[k] = v
			} else {
				delete(ann, k)
			}
		}
		for _, d := range decisions {
			if _, had := old.Annotations[d.set]; had {
				continue
			}
			if _, has := ann[d.set]; has {
				ann[d.by] = user
				if d.set == claiimv1.AnnotationApprove {
					p.SetAnnotations(ann)
					w.stampApproval(ctx, req, old, p)
				}
			}
		}
	}
	p.SetAnnotations(ann)
	return nil
}

// stampApproval records user's approval (claiim.io/approve just set) as
// admission's: when, in claiim.io/approvals signed by the manager and, once
// the request has as many distinct approvers as it needs, the signature
// over the approval that starts the session. It signs nothing unless the
// approval passes the checks the validating webhook makes: with that
// webhook gone, an approval nobody checked still elevates nobody. An
// approval that leaves the request short of approvers consumes
// claiim.io/approve, so the next approver can set it.
func (w pimRequestWebhook) stampApproval(ctx context.Context, req admission.Request, old, p *claiimv1.PIMRequest) {
	ann, user := p.Annotations, claiimv1.Username(req.UserInfo.Username)
	at := w.h.now().UTC().Format(time.RFC3339)
	ann[claiimv1.AnnotationApprovedAt] = at
	if reason, _, err := w.approvalRefusal(ctx, req, old, p, "approve"); err != nil || reason != "" {
		return
	}
	recs, _ := old.ApprovalRecords() // approvalRefusal refused an unreadable list
	comment := []rune(ann[claiimv1.AnnotationApprove])
	comment = comment[:min(len(comment), claiimv1.MaxPIMApprovalComment)]
	recs = append(recs, claiimv1.PIMApprovalRecord{By: user, At: at, Attestation: w.h.Signer.Sign(attest.PIMApprovalEntry(p, user, at)), Comment: string(comment)})
	p.SetApprovalRecords(recs)
	if len(attest.PIMApprovers(p, w.h.Signer)) >= p.Required() {
		ann[claiimv1.AnnotationApprovalAttestation] = w.h.Signer.Sign(attest.PIMApproval(p))
		return
	}
	delete(ann, claiimv1.AnnotationApprove)
	delete(ann, claiimv1.AnnotationApprovedBy)
	delete(ann, claiimv1.AnnotationApprovedAt)
}

func (w pimRequestWebhook) ValidateCreate(ctx context.Context, p *claiimv1.PIMRequest) (admission.Warnings, error) {
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	user := req.UserInfo.Username
	if string(p.Spec.Requester) != user {
		return nil, w.h.refuse(ctx, req, chron.KindPIMRefused, "FORGED_IDENTITY", fmt.Sprintf("spec.requester must be you (%s); it is set from your identity", user))
	}
	return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMRequested, Reason: "PIM_REQUESTED",
		Message: fmt.Sprintf("%s requests elevation for %s for %s, to be approved by %d other person(s): %s", user, p.Spec.Subject, durationOf(p), p.Required(), p.Spec.Reason),
		Context: map[string]any{"subject": string(p.Spec.Subject), "reason": p.Spec.Reason, "approvals_required": p.Required()}})
}

func (w pimRequestWebhook) ValidateDelete(ctx context.Context, old *claiimv1.PIMRequest) (admission.Warnings, error) {
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMDeleted, Reason: "PIM_DELETED",
		Message: fmt.Sprintf("PIMRequest %s (requester %s) deleted; an active session ends with it", old.Name, old.Spec.Requester)})
}

// ValidateUpdate lets identities stand, decisions be final and one at a
// time, and only a second person with the verb `approve` approve or deny.
func (w pimRequestWebhook) ValidateUpdate(ctx context.Context, old, p *claiimv1.PIMRequest) (admission.Warnings, error) {
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	refuse := func(reason, msg string) (admission.Warnings, error) {
		return nil, w.h.refuse(ctx, req, chron.KindPIMRefused, reason, msg)
	}
	if string(p.Spec.Requester) != string(old.Spec.Requester) || p.Spec.Subject != old.Spec.Subject {
		return refuse("FORGED_IDENTITY", "requester and subject of a PIMRequest cannot change; create a new request")
	}
	// The CRD's CEL rule says the same; this holds if the CRD is edited.
	if !equality.Semantic.DeepEqual(old.Spec, p.Spec) {
		return refuse("SPEC_FINAL", "a PIMRequest cannot be changed once made; create a new one")
	}
	var newDecision *struct{ set, by string }
	for i, d := range decisions {
		oldV, had := old.Annotations[d.set]
		newV, has := p.Annotations[d.set]
		switch {
		case had && (!has || oldV != newV):
			return refuse("DECISION_FINAL", fmt.Sprintf("annotation %s is a recorded decision and cannot be changed or removed", d.set))
		case !had && has:
			if newDecision != nil {
				return refuse("ONE_DECISION", "set one of claiim.io/approve, claiim.io/deny or claiim.io/revoke at a time")
			}
			newDecision = &decisions[i]
		}
	}
	approving := newDecision != nil && newDecision.set == claiimv1.AnnotationApprove
	added, ok := addedApproval(old, p)
	if !ok || (added != nil && newDecision != nil && !approving) {
		return refuse("FORGED_IDENTITY", fmt.Sprintf("annotation %s is written by admission only", claiimv1.AnnotationApprovals))
	}
	for _, k := range stamped {
		if old.Annotations[k] != p.Annotations[k] && (newDecision == nil || k != newDecision.by) && (added == nil || k != claiimv1.AnnotationApprovals) &&
			(!approving || (k != claiimv1.AnnotationApprovedAt && k != claiimv1.AnnotationApprovalAttestation)) {
			return refuse("FORGED_IDENTITY", fmt.Sprintf("annotation %s is written by admission only", k))
		}
	}
	if newDecision == nil && added == nil {
		return nil, nil
	}

	user, requester, subject := req.UserInfo.Username, string(old.Spec.Requester), string(old.Spec.Subject)
	if newDecision != nil && newDecision.set == claiimv1.AnnotationRevoke {
		return w.validateRevoke(ctx, req, old, p)
	}

	word := "approve"
	if newDecision != nil && newDecision.set == claiimv1.AnnotationDeny {
		word = "deny"
	}
	if reason, msg, err := w.approvalRefusal(ctx, req, old, p, word); err != nil || reason != "" {
		if err != nil {
			return nil, errored(http.StatusServiceUnavailable, err)
		}
		return refuse(reason, msg)
	}
	ctxt := map[string]any{"requester": requester, "subject": subject}
	if word == "deny" {
		return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMDenied, Reason: "PIM_DENIED", Context: ctxt,
			Message: fmt.Sprintf("%s denied elevation of %s: %s", user, subject, p.Annotations[newDecision.set])})
	}
	// An approval: admission's mutating half recorded and signed it only
	// after the same checks; without its signatures it counts for nothing.
	if added == nil || added.By != claiimv1.Username(user) || w.h.Signer.Verify(attest.PIMApprovalEntry(p, added.By, added.At), added.Attestation) != nil ||
		(approving && attest.PIMApproved(p, w.h.Signer) != nil) {
		return nil, errored(http.StatusServiceUnavailable, fmt.Errorf(
			"the approval was not signed when it was stamped (the approver check failed there); retry the approval"))
	}
	n := len(attest.PIMApprovers(p, w.h.Signer))
	ctxt["approvals"], ctxt["approvals_required"] = n, p.Required()
	if !approving {
		return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMApproved, Reason: "PIM_APPROVAL_RECORDED", Context: ctxt,
			Message: fmt.Sprintf("%s approved elevation of %s for %s (%d of %d approvals; the session starts with the last): %s",
				user, subject, durationOf(p), n, p.Required(), added.Comment)})
	}
	return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMApproved, Reason: "PIM_APPROVED", Context: ctxt,
		Message: fmt.Sprintf("%s approved elevation of %s for %s (%d of %d approvals): %s", user, subject, durationOf(p), n, p.Required(),
			p.Annotations[newDecision.set])})
}

// validateRevoke lets the requester, or an approver, end a pending or
// active session.
func (w pimRequestWebhook) validateRevoke(ctx context.Context, req admission.Request, old, p *claiimv1.PIMRequest) (admission.Warnings, error) {
	user, requester, subject := req.UserInfo.Username, string(old.Spec.Requester), string(old.Spec.Subject)
	state := old.SessionWithin(w.h.now(), w.h.PIMPendingTTL)
	if state.Phase != claiimv1.PIMPending && state.Phase != claiimv1.PIMActive {
		return nil, w.h.refuse(ctx, req, chron.KindPIMRefused, "DECISION_FINAL", fmt.Sprintf("this request is already %s; there is nothing to revoke", state.Phase))
	}
	if user != requester {
		ok, err := w.h.can(ctx, req, "approve", "pimrequests", p.Name)
		if err != nil {
			return nil, errored(http.StatusServiceUnavailable, err)
		}
		if !ok {
			return nil, w.h.refuse(ctx, req, chron.KindPIMRefused, "NOT_AN_APPROVER", "only the requester or an approver (RBAC verb 'approve' on pimrequests) can revoke a PIM session")
		}
	}
	return nil, w.h.admit(ctx, req, &chron.Record{Kind: chron.KindPIMRevoked, Reason: "PIM_REVOKED",
		Message: fmt.Sprintf("%s revoked the session of %s: %s", user, subject, p.Annotations[claiimv1.AnnotationRevoke]),
		Context: map[string]any{"requester": requester, "subject": subject}})
}

// addedApproval is the approval admission appended to claiim.io/approvals
// in this update (nil if the list is unchanged); false when the list
// changed in any other way, which admission never does.
func addedApproval(old, p *claiimv1.PIMRequest) (*claiimv1.PIMApprovalRecord, bool) {
	if old.Annotations[claiimv1.AnnotationApprovals] == p.Annotations[claiimv1.AnnotationApprovals] {
		return nil, true
	}
	was, errOld := old.ApprovalRecords()
	now, errNew := p.ApprovalRecords()
	if errOld != nil || errNew != nil || len(now) != len(was)+1 {
		return nil, false
	}
	for i := range was {
		if was[i] != now[i] {
			return nil, false
		}
	}
	return &now[len(was)], true
}

// approvalRefusal says why user may not approve (or deny) the request,
// or "" when they may: the request is still pending, it is not their own,
// they are a person (or a ServiceAccount the manager was told to accept),
// and RBAC gives them the verb approve.
func (w pimRequestWebhook) approvalRefusal(ctx context.Context, req admission.Request, old, p *claiimv1.PIMRequest, word string) (string, string, error) {
	user, requester, subject := req.UserInfo.Username, string(old.Spec.Requester), string(old.Spec.Subject)
	state := old.SessionWithin(w.h.now(), w.h.PIMPendingTTL)
	switch {
	case state.PendingExpired:
		return "PIM_PENDING_EXPIRED", fmt.Sprintf(
			"this request waited longer than %s for its approvals and expired, so it can no longer be approved or denied. "+
				"File a new PIMRequest (kubectl claiim pim request --reason \"...\") and have it approved within %s", w.h.PIMPendingTTL, w.h.PIMPendingTTL), nil
	case state.Phase != claiimv1.PIMPending:
		return "DECISION_FINAL", fmt.Sprintf("this request is already %s; a decision already made cannot change. Request elevation again with a new PIMRequest", state.Phase), nil
	}
	recs, err := old.ApprovalRecords()
	if err != nil {
		return "FORGED_IDENTITY", fmt.Sprintf("%v: it was written past admission, so no approval of this request can be counted. File a new PIMRequest", err), nil
	}
	// One person under two spellings (case, spaces) is still one person.
	me := claiimv1.Username(user)
	if claiimv1.SamePerson(me, old.Spec.Requester) || claiimv1.SamePerson(me, old.Spec.Subject) {
		spelled := ""
		if user != requester && user != subject {
			spelled = fmt.Sprintf(" (you are %q, it was made by %q for %q: usernames that differ only in case or spaces are one person)", user, requester, subject)
		}
		return "SELF_APPROVAL", fmt.Sprintf(
			"you cannot %s your own request%s: two-person control needs a second admin. Ask another approver (e.g. peer@claiim.io) to run: kubectl annotate pimrequest %s claiim.io/%s=\"<comment>\"",
			word, spelled, p.Name, word), nil
	}
	if word == "approve" && slices.ContainsFunc(recs, func(r claiimv1.PIMApprovalRecord) bool { return claiimv1.SamePerson(r.By, me) }) {
		return "DUPLICATE_APPROVAL", fmt.Sprintf(
			"you already approved this request, and each person counts once (usernames that differ only in case or spaces are one person): "+
				"it needs %d distinct approvers besides the requester and has %d. "+
				"Ask another approver to run: kubectl annotate pimrequest %s claiim.io/approve=\"<comment>\"", old.Required(), len(recs), p.Name), nil
	}
	// A username spelled like a ServiceAccount's is treated as one,
	// whatever its case: fail closed.
	if word == "approve" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(user)), serviceAccountPrefix) && !slices.Contains(w.h.ApproverServiceAccounts, user) {
		return "SERVICEACCOUNT_APPROVER", fmt.Sprintf(
			"%s is a ServiceAccount, and PIM approvals come from people: a ServiceAccount approves only if the manager lists it in --pim-approver-serviceaccounts. Ask a person with the claiim-approver role to approve", user), nil
	}
	ok, err := w.h.can(ctx, req, "approve", "pimrequests", p.Name)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "NOT_AN_APPROVER", fmt.Sprintf(
			"%s may not %s PIM requests: it needs the RBAC verb 'approve' on pimrequests.claiim.io (the claiim-approver ClusterRole)", user, word), nil
	}
	return "", "", nil
}

// serviceAccountPrefix starts every ServiceAccount's username.
const serviceAccountPrefix = "system:serviceaccount:"

func durationOf(p *claiimv1.PIMRequest) string {
	if p.Spec.Duration == nil {
		return claiimv1.DefaultPIMDuration
	}
	return p.Spec.Duration.Duration.String()
}
