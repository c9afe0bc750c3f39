package admission

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// grantWebhook: each side's approval comes from an admin of that org (RBAC
// verb approve-grant on the AIOrg), two different people, stamped from the
// authenticated user; approving and revoking need no session. Every other
// change needs PIM.
type grantWebhook struct{ h *handlers }

var (
	_ admission.Validator[*claiimv1.CrossOrgGrant] = grantWebhook{}
	_ admission.Defaulter[*claiimv1.CrossOrgGrant] = grantWebhook{}
)

// grantDecisions pair what each side's admin sets with what admission
// stamps for it, and whose admin that is.
var grantDecisions = []struct {
	set, by string
	org     func(*claiimv1.CrossOrgGrantSpec) claiimv1.OrgName
}{
	{claiimv1.AnnotationApproveGranting, claiimv1.AnnotationGrantingApprovedBy, func(s *claiimv1.CrossOrgGrantSpec) claiimv1.OrgName { return s.GrantingOrg }},
	{claiimv1.AnnotationApproveReceiving, claiimv1.AnnotationReceivingApprovedBy, func(s *claiimv1.CrossOrgGrantSpec) claiimv1.OrgName { return s.ReceivingOrg }},
}

// Default stamps who approved each side from the authenticated user (a
// stamp in the request is replaced by the recorded one), then the
// admission stamp.
func (w grantWebhook) Default(ctx context.Context, g *claiimv1.CrossOrgGrant) error {
	req, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	old := &claiimv1.CrossOrgGrant{}
	if req.Operation == admissionv1.Update {
		if err := w.h.decoder.DecodeRaw(req.OldObject, old); err != nil {
			return errored(http.StatusBadRequest, err)
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
	return w.h.stamp(ctx, g)
}

func (w grantWebhook) ValidateCreate(ctx context.Context, _ *claiimv1.CrossOrgGrant) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, noRules)
}

func (w grantWebhook) ValidateUpdate(ctx context.Context, old, g *claiimv1.CrossOrgGrant) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, func(req admission.Request) (verdict, error) { return w.update(ctx, req, old, g) })
}

func (w grantWebhook) ValidateDelete(ctx context.Context, _ *claiimv1.CrossOrgGrant) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, noRules)
}

func (w grantWebhook) update(ctx context.Context, req admission.Request, old, g *claiimv1.CrossOrgGrant) (verdict, error) {
	approvals := 0
	for _, d := range grantDecisions {
		org := string(d.org(&g.Spec))
		oldBy, newBy := old.Annotations[d.by], g.Annotations[d.by]
		if oldBy != "" && (newBy != oldBy || g.Annotations[d.set] != old.Annotations[d.set]) {
			return verdict{refuse: fmt.Sprintf("the approval %s is recorded and cannot be changed or removed", d.set)}, nil
		}
		if oldBy == "" && newBy != "" {
			if newBy != req.UserInfo.Username {
				return verdict{refuse: fmt.Sprintf("annotation %s is written by admission only", d.by)}, nil
			}
			ok, err := w.h.can(ctx, req, "approve-grant", "aiorgs", org)
			if err != nil {
				return verdict{}, err
			}
			if !ok {
				return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("%s is not an admin of org %q: approving needs the RBAC verb 'approve-grant' on aiorgs.claiim.io/%s", newBy, org, org)}, nil
			}
			approvals++
		}
	}
	gBy, rBy := g.Annotations[claiimv1.AnnotationGrantingApprovedBy], g.Annotations[claiimv1.AnnotationReceivingApprovedBy]
	if gBy != "" && gBy == rBy {
		return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("both sides of a grant must be approved by two different people; %s already approved the other side", gBy)}, nil
	}
	specSame := equality.Semantic.DeepEqual(withoutRevoked(g.Spec), withoutRevoked(old.Spec)) && equality.Semantic.DeepEqual(g.Labels, old.Labels)
	switch {
	case approvals > 0 && specSame && g.Spec.Revoked == old.Spec.Revoked:
		return verdict{noSession: ReasonOwnAct, what: fmt.Sprintf("grant %s approved (granting: %s, receiving: %s)", g.Name, gBy, rBy)}, nil
	case approvals == 0 && specSame && g.Spec.Revoked && !old.Spec.Revoked:
		return verdict{noSession: ReasonSafety, what: fmt.Sprintf("grant %s revoked (a safety action: no PIM session needed)", g.Name)}, nil
	}
	return verdict{}, nil
}

func withoutRevoked(s claiimv1.CrossOrgGrantSpec) claiimv1.CrossOrgGrantSpec {
	s.Revoked = false
	return s
}
