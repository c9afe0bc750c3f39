package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// stamped are the annotations only admission writes.
var stamped = []string{claiimv1.AnnotationApprovedBy, claiimv1.AnnotationApprovedAt, claiimv1.AnnotationDeniedBy, claiimv1.AnnotationRevokedBy}

// decisions pair what a person sets with what admission stamps for it.
var decisions = []struct{ set, by string }{
	{claiimv1.AnnotationApprove, claiimv1.AnnotationApprovedBy},
	{claiimv1.AnnotationDeny, claiimv1.AnnotationDeniedBy},
	{claiimv1.AnnotationRevoke, claiimv1.AnnotationRevokedBy},
}

// mutatePIM stamps identities from the authenticated user: the requester
// on create, and who decided when a decision annotation appears. Values a
// user sends for these are overwritten.
func (h *handlers) mutatePIM(ctx context.Context, req admission.Request) admission.Response {
	p := &claiimv1.PIMRequest{}
	if err := h.decoder.DecodeRaw(req.Object, p); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
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
		if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
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
					ann[claiimv1.AnnotationApprovedAt] = h.now().UTC().Format(time.RFC3339)
				}
			}
		}
	}
	p.SetAnnotations(ann)
	b, err := json.Marshal(p)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, b)
}

// validatePIM enforces two-person control on PIMRequests.
func (h *handlers) validatePIM(ctx context.Context, req admission.Request) admission.Response {
	user := req.UserInfo.Username
	if req.Operation == admissionv1.Delete {
		old := &claiimv1.PIMRequest{}
		if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return h.allow(ctx, req, &chron.Record{Kind: chron.KindPIMDeleted, Reason: "PIM_DELETED",
			Message: fmt.Sprintf("PIMRequest %s (requester %s) deleted; an active session ends with it", old.Name, old.Spec.Requester)}, admission.Allowed(""))
	}
	p := &claiimv1.PIMRequest{}
	if err := h.decoder.DecodeRaw(req.Object, p); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if req.Operation == admissionv1.Create {
		if string(p.Spec.Requester) != user {
			return h.deny(ctx, req, chron.KindPIMRefused, "FORGED_IDENTITY", fmt.Sprintf("spec.requester must be you (%s); it is set from your identity", user))
		}
		return h.allow(ctx, req, &chron.Record{Kind: chron.KindPIMRequested, Reason: "PIM_REQUESTED",
			Message: fmt.Sprintf("%s requests elevation for %s for %s: %s", user, p.Spec.Subject, durationOf(p), p.Spec.Reason),
			Context: map[string]any{"subject": string(p.Spec.Subject), "reason": p.Spec.Reason}}, admission.Allowed(""))
	}

	old := &claiimv1.PIMRequest{}
	if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if string(p.Spec.Requester) != string(old.Spec.Requester) || p.Spec.Subject != old.Spec.Subject {
		return h.deny(ctx, req, chron.KindPIMRefused, "FORGED_IDENTITY", "requester and subject of a PIMRequest cannot change; create a new request")
	}
	state := old.Session(h.now())
	var newDecision *struct{ set, by string }
	for i, d := range decisions {
		oldV, had := old.Annotations[d.set]
		newV, has := p.Annotations[d.set]
		switch {
		case had && (!has || oldV != newV):
			return h.deny(ctx, req, chron.KindPIMRefused, "DECISION_FINAL", fmt.Sprintf("annotation %s is a recorded decision and cannot be changed or removed", d.set))
		case !had && has:
			if newDecision != nil {
				return h.deny(ctx, req, chron.KindPIMRefused, "ONE_DECISION", "set one of claiim.io/approve, claiim.io/deny or claiim.io/revoke at a time")
			}
			newDecision = &decisions[i]
		}
	}
	for _, k := range stamped {
		if old.Annotations[k] != p.Annotations[k] && (newDecision == nil || (k != newDecision.by && k != claiimv1.AnnotationApprovedAt)) {
			return h.deny(ctx, req, chron.KindPIMRefused, "FORGED_IDENTITY", fmt.Sprintf("annotation %s is written by admission only", k))
		}
	}
	if newDecision == nil {
		return admission.Allowed("")
	}

	requester, subject := string(old.Spec.Requester), string(old.Spec.Subject)
	switch newDecision.set {
	case claiimv1.AnnotationApprove, claiimv1.AnnotationDeny:
		word := "approve"
		if newDecision.set == claiimv1.AnnotationDeny {
			word = "deny"
		}
		if state.Phase != claiimv1.PIMPending {
			return h.deny(ctx, req, chron.KindPIMRefused, "DECISION_FINAL", fmt.Sprintf("this request is already %s; a decision already made cannot change. Request elevation again with a new PIMRequest", state.Phase))
		}
		if user == requester || user == subject {
			return h.deny(ctx, req, chron.KindPIMRefused, "SELF_APPROVAL", fmt.Sprintf(
				"you cannot %s your own request: two-person control needs a second admin. Ask another approver (e.g. peer@claiim.io) to run: kubectl annotate pimrequest %s %s=\"<comment>\"", word, p.Name, newDecision.set))
		}
		ok, err := h.can(ctx, req, "approve", "pimrequests", p.Name)
		if err != nil {
			return admission.Errored(http.StatusServiceUnavailable, err)
		}
		if !ok {
			return h.deny(ctx, req, chron.KindPIMRefused, "NOT_AN_APPROVER", fmt.Sprintf(
				"%s may not %s PIM requests: it needs the RBAC verb 'approve' on pimrequests.claiim.io (the claiim-approver ClusterRole)", user, word))
		}
		kind, reason, msg := chron.KindPIMApproved, "PIM_APPROVED", fmt.Sprintf("%s approved elevation of %s for %s: %s", user, subject, durationOf(p), p.Annotations[newDecision.set])
		if word == "deny" {
			kind, reason, msg = chron.KindPIMDenied, "PIM_DENIED", fmt.Sprintf("%s denied elevation of %s: %s", user, subject, p.Annotations[newDecision.set])
		}
		return h.allow(ctx, req, &chron.Record{Kind: kind, Reason: reason, Message: msg,
			Context: map[string]any{"requester": requester, "subject": subject}}, admission.Allowed(""))
	default: // revoke
		if state.Phase != claiimv1.PIMPending && state.Phase != claiimv1.PIMActive {
			return h.deny(ctx, req, chron.KindPIMRefused, "DECISION_FINAL", fmt.Sprintf("this request is already %s; there is nothing to revoke", state.Phase))
		}
		if user != requester {
			ok, err := h.can(ctx, req, "approve", "pimrequests", p.Name)
			if err != nil {
				return admission.Errored(http.StatusServiceUnavailable, err)
			}
			if !ok {
				return h.deny(ctx, req, chron.KindPIMRefused, "NOT_AN_APPROVER", "only the requester or an approver (RBAC verb 'approve' on pimrequests) can revoke a PIM session")
			}
		}
		return h.allow(ctx, req, &chron.Record{Kind: chron.KindPIMRevoked, Reason: "PIM_REVOKED",
			Message: fmt.Sprintf("%s revoked the session of %s: %s", user, subject, p.Annotations[newDecision.set]),
			Context: map[string]any{"requester": requester, "subject": subject}}, admission.Allowed(""))
	}
}

func durationOf(p *claiimv1.PIMRequest) string {
	if p.Spec.Duration == nil {
		return claiimv1.DefaultPIMDuration
	}
	return p.Spec.Duration.Duration.String()
}
