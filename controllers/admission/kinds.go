package admission

import (
	"context"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// kind is one resource admission serves.
type kind struct {
	obj      client.Object // an empty object of the kind
	resource string        // its plural, as in the webhook rules
	// privileged kinds are the control plane: their validator calls
	// requirePIM for every operation, and their defaulter stamps. PIMRequest alone is not: it is the
	// elevation itself, under its own two-person control.
	privileged   bool
	validatePath string
	validate     admission.Handler
	mutatePath   string            // "" when the kind has no defaulter
	mutate       admission.Handler // nil when the kind has no defaulter
}

// kinds lists every kind admission serves, once. Setup registers the
// webhooks from it, and the tests walk it (every kind of the API must be
// here, and every privileged one must consult PIM on create, update and
// delete), so a kind added later can't be forgotten.
func (h *handlers) kinds() []kind {
	s := h.Scheme
	// A defaulter's patch takes the request's object to exactly the
	// defaulted typed object, as this package has always answered;
	// controller-runtime's default would keep fields the Go types drop.
	unpruned := admission.DefaulterRemoveUnknownOrOmitableFields
	return []kind{
		{obj: &claiimv1.AIOrg{}, resource: "aiorgs", privileged: true,
			validatePath: PathValidateControlPlane, validate: admission.WithValidator(s, pimOnly[*claiimv1.AIOrg]{h}).Handler,
			mutatePath: PathMutateAIOrg, mutate: admission.WithDefaulter(s, stampOnly[*claiimv1.AIOrg]{h}, unpruned).Handler},
		{obj: &claiimv1.Policy{}, resource: "policies", privileged: true,
			validatePath: PathValidateControlPlane, validate: admission.WithValidator(s, pimOnly[*claiimv1.Policy]{h}).Handler,
			mutatePath: PathMutatePolicy, mutate: admission.WithDefaulter(s, stampOnly[*claiimv1.Policy]{h}, unpruned).Handler},
		{obj: &claiimv1.Skill{}, resource: "skills", privileged: true,
			validatePath: PathValidateControlPlane, validate: admission.WithValidator(s, skillWebhook{h}).Handler,
			mutatePath: PathMutateSkill, mutate: admission.WithDefaulter(s, stampOnly[*claiimv1.Skill]{h}, unpruned).Handler},
		{obj: &claiimv1.Agent{}, resource: "agents", privileged: true,
			validatePath: PathValidateControlPlane, validate: admission.WithValidator(s, agentWebhook{h}).Handler,
			mutatePath: PathMutateAgent, mutate: admission.WithDefaulter(s, agentWebhook{h}, unpruned).Handler},
		{obj: &claiimv1.CrossOrgGrant{}, resource: "crossorggrants", privileged: true,
			validatePath: PathValidateControlPlane, validate: admission.WithValidator(s, grantWebhook{h}).Handler,
			mutatePath: PathMutateGrant, mutate: admission.WithDefaulter(s, grantWebhook{h}, unpruned).Handler},
		{obj: &claiimv1.PIMRequest{}, resource: "pimrequests",
			validatePath: PathValidatePIM, validate: admission.WithValidator(s, pimRequestWebhook{h}).Handler,
			mutatePath: PathMutatePIM, mutate: admission.WithDefaulter(s, pimRequestWebhook{h}, unpruned).Handler},
		{obj: &claiimv1.ActionApproval{}, resource: "actionapprovals",
			validatePath: PathValidateApproval, validate: admission.WithValidator(s, actionApprovalWebhook{h}).Handler,
			mutatePath: PathMutateApproval, mutate: admission.WithDefaulter(s, actionApprovalWebhook{h}, unpruned).Handler},
	}
}

// routes maps each webhook path to the handlers of the kinds it serves:
// /validate-controlplane serves every privileged kind, routed by kind to
// that kind's typed validator.
func (h *handlers) routes() (map[string]byKind, error) {
	routes := map[string]byKind{}
	add := func(path, kind string, hd admission.Handler) {
		if routes[path] == nil {
			routes[path] = byKind{}
		}
		routes[path][kind] = hd
	}
	for _, k := range h.kinds() {
		gvk, err := apiutil.GVKForObject(k.obj, h.Scheme)
		if err != nil {
			return nil, fmt.Errorf("admission: %w", err)
		}
		add(k.validatePath, gvk.Kind, k.validate)
		if k.mutate != nil {
			add(k.mutatePath, gvk.Kind, k.mutate)
		}
	}
	return routes, nil
}

// byKind hands a request to the handler of its kind.
type byKind map[string]admission.Handler

func (b byKind) Handle(ctx context.Context, req admission.Request) admission.Response {
	hd, ok := b[req.Kind.Kind]
	if !ok {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unexpected kind %s", req.Kind.Kind))
	}
	return hd.Handle(ctx, req)
}
