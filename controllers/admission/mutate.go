package admission

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// mutateAgent handles anchor acceptance at creation: when the creator is
// the anchor, acceptance is implicit (the seed's onboarding); nobody else
// can accept on the anchor's behalf.
func (h *handlers) mutateAgent(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	a := &claiimv1.Agent{}
	if err := h.decoder.DecodeRaw(req.Object, a); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	ann := a.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if req.UserInfo.Username == string(a.Spec.AccountabilityAnchor) {
		ann[claiimv1.AnnotationAnchorAccepted] = req.UserInfo.Username
	} else {
		delete(ann, claiimv1.AnnotationAnchorAccepted)
	}
	a.SetAnnotations(ann)
	return patch(req, a)
}

var grantDecisions = []struct{ set, by string }{
	{claiimv1.AnnotationApproveGranting, claiimv1.AnnotationGrantingApprovedBy},
	{claiimv1.AnnotationApproveReceiving, claiimv1.AnnotationReceivingApprovedBy},
}

// mutateGrant stamps who approved each side from the authenticated user.
func (h *handlers) mutateGrant(ctx context.Context, req admission.Request) admission.Response {
	g := &claiimv1.CrossOrgGrant{}
	if err := h.decoder.DecodeRaw(req.Object, g); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	old := &claiimv1.CrossOrgGrant{}
	if req.Operation == admissionv1.Update {
		if err := h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	ann := g.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for _, d := range grantDecisions {
		if v, ok := old.Annotations[d.by]; ok {
			ann[d.by] = v
		} else {
			delete(ann, d.by)
		}
		if req.Operation == admissionv1.Create {
			delete(ann, d.set) // approvals come after creation, from each side
			continue
		}
		if _, had := old.Annotations[d.set]; !had {
			if _, has := ann[d.set]; has {
				ann[d.by] = req.UserInfo.Username
			}
		}
	}
	g.SetAnnotations(ann)
	return patch(req, g)
}

func patch(req admission.Request, obj client.Object) admission.Response {
	b, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, b)
}
