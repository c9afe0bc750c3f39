// Package admission holds CLAIIM's admission webhooks: two-person PIM for
// every control-plane change, identities stamped from the authenticated
// user, published skill versions kept immutable, agent lifecycle rules.
// Every privileged change admitted or refused is written to Chron first;
// if Chron can't be written the change is refused.
package admission

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
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
	Clock           clock.PassiveClock
	Scheme          *runtime.Scheme
}

// Webhook paths; the markers below generate config/webhook/manifests.yaml.
const (
	PathMutatePIM            = "/mutate-pimrequest"
	PathValidatePIM          = "/validate-pimrequest"
	PathMutateAgent          = "/mutate-agent"
	PathMutateGrant          = "/mutate-crossorggrant"
	PathValidateControlPlane = "/validate-controlplane"
)

// +kubebuilder:webhook:path=/mutate-pimrequest,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=pimrequests,verbs=create;update,versions=v1alpha1,name=mpimrequest.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-pimrequest,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=claiim.io,resources=pimrequests,verbs=create;update;delete,versions=v1alpha1,name=vpimrequest.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-agent,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=agents,verbs=create;update,versions=v1alpha1,name=magent.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-crossorggrant,mutating=true,failurePolicy=fail,sideEffects=None,groups=claiim.io,resources=crossorggrants,verbs=create;update,versions=v1alpha1,name=mcrossorggrant.claiim.io,admissionReviewVersions=v1,timeoutSeconds=5
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
	if o.Reader == nil || o.APIReader == nil || o.Client == nil || o.Log == nil || o.ManagerUsername == "" {
		return fmt.Errorf("admission: Reader, APIReader, Client, Log and ManagerUsername are required")
	}
	h := &handlers{Options: o, decoder: admission.NewDecoder(o.Scheme)}
	srv := mgr.GetWebhookServer()
	for path, fn := range map[string]admission.HandlerFunc{
		PathMutatePIM:            h.mutatePIM,
		PathValidatePIM:          h.validatePIM,
		PathMutateAgent:          h.mutateAgent,
		PathMutateGrant:          h.mutateGrant,
		PathValidateControlPlane: h.validateControlPlane,
	} {
		srv.Register(path, &webhook.Admission{Handler: fn})
	}
	return nil
}

type handlers struct {
	Options
	decoder admission.Decoder
}

func (h *handlers) now() time.Time { return h.Clock.Now() }

// can asks the apiserver whether the requesting user may do verb on the
// resource (SubjectAccessReview), e.g. the custom verb `approve`.
func (h *handlers) can(ctx context.Context, req admission.Request, verb, resource, name string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range req.UserInfo.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: claiimv1.GroupVersion.Group, Version: claiimv1.GroupVersion.Version, Resource: resource, Verb: verb, Name: name,
		},
	}}
	if err := h.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("asking the apiserver whether %s may %s %s: %w", req.UserInfo.Username, verb, resource, err)
	}
	return sar.Status.Allowed, nil
}

// activeSession finds a PIMRequest that elevates user now.
// The cache is asked first; before refusing, the apiserver itself.
func (h *handlers) activeSession(ctx context.Context, user string) (*claiimv1.PIMRequest, error) {
	for _, r := range []client.Reader{h.Reader, h.APIReader} {
		list := &claiimv1.PIMRequestList{}
		if err := r.List(ctx, list); err != nil {
			return nil, fmt.Errorf("reading PIM sessions: %w", err)
		}
		now := h.now()
		for i := range list.Items {
			if list.Items[i].Elevates(user, now) {
				return &list.Items[i], nil
			}
		}
	}
	return nil, nil
}

// record writes an admission decision to Chron (not for dry runs, which
// promise no side effects).
func (h *handlers) record(ctx context.Context, req admission.Request, rec *chron.Record) error {
	if req.DryRun != nil && *req.DryRun {
		return nil
	}
	rec.Actor = req.UserInfo.Username
	rec.RequestID = string(req.UID)
	rec.Replica = "manager"
	if rec.Context == nil {
		rec.Context = map[string]any{}
	}
	rec.Context["operation"] = string(req.Operation)
	rec.Context["resource"] = req.Resource.Resource
	rec.Context["name"] = req.Name
	if req.Namespace != "" {
		rec.Context["namespace"] = req.Namespace
	}
	_, err := h.Log.Write(ctx, rec)
	return err
}

// deny refuses with a message that says what to do, recording it first.
// If the refusal can't be recorded it is still a refusal.
func (h *handlers) deny(ctx context.Context, req admission.Request, kind chron.Kind, reason, msg string) admission.Response {
	_ = h.record(ctx, req, &chron.Record{Kind: kind, Action: action(req), Outcome: chron.OutcomeDeny, Reason: reason, Message: msg})
	return admission.Denied(msg)
}

// allow admits after the record has committed; no record, no change.
func (h *handlers) allow(ctx context.Context, req admission.Request, rec *chron.Record, resp admission.Response) admission.Response {
	if rec.Action == "" {
		rec.Action = action(req)
	}
	rec.Outcome = chron.OutcomeAllow
	if err := h.record(ctx, req, rec); err != nil {
		return admission.Errored(http.StatusServiceUnavailable,
			fmt.Errorf("the change is refused because it could not be recorded in Chron (fail-closed): %w", err))
	}
	return resp
}

// action names an admission request in Chron: "create:aiorgs".
func action(req admission.Request) string {
	return fmt.Sprintf("%s:%s", strings.ToLower(string(req.Operation)), req.Resource.Resource)
}

// verbing turns an operation into words for messages.
func verbing(op string) string {
	switch op {
	case "CREATE":
		return "creating"
	case "UPDATE":
		return "changing"
	case "DELETE":
		return "deleting"
	}
	return strings.ToLower(op)
}
