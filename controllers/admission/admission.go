// Package admission holds CLAIIM's admission webhooks: two-person PIM for
// every control-plane change, identities stamped from the authenticated
// user, published skill versions kept immutable, agent lifecycle rules.
// Every privileged change admitted or refused is written to Chron first;
// if Chron can't be written the change is refused.
//
// Each kind has one small typed webhook (controller-runtime's
// admission.Validator[T] and, where the kind is stamped, Defaulter[T]).
// The typed API carries everything we need: the request, with the
// authenticated user, is in the context (admission.RequestFromContext); an
// error answers with its message unchanged (admission.Denied), and a
// *StatusError with its exact status, so refusals read as they always did.
// The control-plane kinds share one PIM check (requirePIM), and kinds.go
// lists every kind once: Setup registers from it and the tests walk it.
package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Log is where admission decisions are recorded (Chron's writer).
type Log interface {
	Write(ctx context.Context, r *chron.Record) (chron.Row, error)
}

// Options configures the webhooks.
type Options struct {
	// Reader reads PIMRequests, Skills, Agents and grants (the manager's
	// cache).
	Reader client.Reader
	// APIReader reads past the cache where a lagging cache would wrongly
	// refuse: a skill created a moment ago, a session approved just now.
	APIReader client.Reader
	// Client creates SubjectAccessReviews.
	Client client.Client
	Log    Log
	// ManagerUsername is the manager's own identity, exempt from PIM.
	ManagerUsername string
	// Signer signs the approvals admission checked and verifies the
	// attestations of sessions and grants it relies on (the manager's key).
	Signer *attest.Signer
	// ApproverServiceAccounts are the only ServiceAccounts that may approve
	// a PIMRequest (full usernames, system:serviceaccount:<ns>:<name>).
	// Approvals come from people: empty by default.
	ApproverServiceAccounts []string
	// WhatIf, when set, replays recent decisions against every admitted
	// Policy, Skill and Agent change and warns what would flip.
	WhatIf *WhatIf
	// PIMPendingTTL is how long a PIMRequest may wait for its approvals;
	// past it, approving it is refused (file a new one). Default 24h.
	PIMPendingTTL time.Duration
	Clock         clock.PassiveClock
	Scheme        *runtime.Scheme
}

// Webhook paths; the markers below generate config/webhook/manifests.yaml.
const (
	PathMutatePIM            = "/mutate-pimrequest"
	PathValidatePIM          = "/validate-pimrequest"
	PathMutateAgent          = "/mutate-agent"
	PathMutateGrant          = "/mutate-crossorggrant"
	PathMutateAIOrg          = "/mutate-aiorg"
	PathMutateSkill          = "/mutate-skill"
	PathMutatePolicy         = "/mutate-policy"
	PathValidateControlPlane = "/validate-controlplane"
	PathMutateApproval       = "/mutate-actionapproval"
	PathValidateApproval     = "/validate-actionapproval"
)

// +kubebuilder:webhook:path=/mutate-pimrequest,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=pimrequests,verbs=create;update,versions=v1alpha1,name=mpimrequest.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-actionapproval,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=actionapprovals,verbs=create;update,versions=v1alpha1,name=mactionapproval.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-actionapproval,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=claiim.io,resources=actionapprovals,verbs=create;update;delete,versions=v1alpha1,name=vactionapproval.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-pimrequest,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=claiim.io,resources=pimrequests,verbs=create;update;delete,versions=v1alpha1,name=vpimrequest.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// The control-plane kinds' mutating webhooks stamp what they admit
// (stamp.go); reinvoked after any other mutating webhook, so the stamp
// covers the object as stored.
// +kubebuilder:webhook:path=/mutate-agent,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=agents,verbs=create;update,versions=v1alpha1,name=magent.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/mutate-crossorggrant,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=crossorggrants,verbs=create;update,versions=v1alpha1,name=mcrossorggrant.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/mutate-aiorg,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=aiorgs,verbs=create;update,versions=v1alpha1,name=maiorg.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/mutate-skill,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=skills,verbs=create;update,versions=v1alpha1,name=mskill.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/mutate-policy,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=policies,verbs=create;update,versions=v1alpha1,name=mpolicy.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=IfNeeded
// +kubebuilder:webhook:path=/validate-controlplane,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=claiim.io,resources=aiorgs;skills;policies;agents;crossorggrants,verbs=create;update;delete,versions=v1alpha1,name=vcontrolplane.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=claiim.io,resources=pimrequests,verbs=get;list;watch

// Setup registers every webhook with the manager's webhook server.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Scheme == nil {
		o.Scheme = mgr.GetScheme()
	}
	if o.Reader == nil || o.APIReader == nil || o.Client == nil || o.Log == nil || o.ManagerUsername == "" || o.Signer == nil {
		return fmt.Errorf("admission: Reader, APIReader, Client, Log, ManagerUsername and Signer are required")
	}
	h := newHandlers(o)
	routes, err := h.routes()
	if err != nil {
		return err
	}
	srv := mgr.GetWebhookServer()
	for path, r := range routes {
		srv.Register(path, &webhook.Admission{Handler: r})
	}
	return nil
}

// handlers is what every kind's webhook shares: options, a decoder for
// old objects, the PIM check and the Chron record.
type handlers struct {
	Options
	decoder admission.Decoder

	once   sync.Once
	byKind map[string]admission.Handler // validators(): the stamp's dry run
}

func newHandlers(o Options) *handlers {
	if o.PIMPendingTTL <= 0 {
		o.PIMPendingTTL = claiimv1.DefaultPIMPendingTTL
	}
	return &handlers{Options: o, decoder: admission.NewDecoder(o.Scheme)}
}

func (h *handlers) now() time.Time { return h.Clock.Now() }

// can asks the apiserver whether the requesting user may do verb on the
// resource (SubjectAccessReview), e.g. the custom verb `approve`.
func (h *handlers) can(ctx context.Context, req admission.Request, verb, resource, name string) (bool, error) {
	return h.canIn(ctx, req, verb, resource, "", name)
}

// canIn is can for a namespaced resource.
func (h *handlers) canIn(ctx context.Context, req admission.Request, verb, resource, namespace, name string) (bool, error) {
	return h.review(ctx, req, authorizationv1.ResourceAttributes{Resource: resource, Verb: verb, Name: name, Namespace: namespace})
}

// review asks whether the requesting user may do what attrs say on a
// claiim.io resource (the group and version are filled in).
func (h *handlers) review(ctx context.Context, req admission.Request, attrs authorizationv1.ResourceAttributes) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range req.UserInfo.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	attrs.Group, attrs.Version = claiimv1.GroupVersion.Group, claiimv1.GroupVersion.Version
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups, Extra: extra, ResourceAttributes: &attrs,
	}}
	if err := h.Client.Create(ctx, sar); err != nil {
		what := attrs.Resource
		if attrs.Subresource != "" {
			what += "/" + attrs.Subresource
		}
		return false, fmt.Errorf("asking the apiserver whether %s may %s %s %s: %w", req.UserInfo.Username, attrs.Verb, what, attrs.Name, err)
	}
	return sar.Status.Allowed, nil
}
