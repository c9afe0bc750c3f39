package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/claiim/claiim-operator/config"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Self-protection. Deleting or editing a webhook configuration switches
// PIM off for everyone; editing a CRD can drop its validation. The manager
// watches CLAIIM's CRDs and webhook configurations and puts them back, from
// the manifests built into its binary (package config), within seconds of
// the change, recording each restoration in Chron, as an event and as a
// metric. The published attestation keys too (ConfigMap
// claiim-attestation-keys): a key added there could sign anything.

// ProtectConfig names what the manager keeps in place.
type ProtectConfig struct {
	// Namespace and Service are where the webhook configurations send
	// admissions (the manager's webhook Service, port 443).
	Namespace, Service string
	// URL, when set, is used instead of the Service: the base (scheme,
	// host, port) of a manager running outside the cluster, as the local
	// control plane runs it.
	URL string
	// Mutating and Validating are the configurations' names.
	Mutating, Validating string
	// CABundle, when set, puts the caBundle back after a restoration (the
	// manager's own certificate); otherwise each webhook keeps the caBundle
	// it has (cert-manager injects it).
	CABundle func(ctx context.Context) error
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;update

// KindManifestRestored: the manager put back a CRD or webhook configuration
// that was edited or deleted.
const KindManifestRestored chron.Kind = "manifest.restored"

var restoredTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "claiim_manager_manifests_restored_total",
	Help: "CRDs and webhook configurations the manager put back after they were edited or deleted.",
}, []string{"kind", "name"})

func init() { metrics.Registry.MustRegister(restoredTotal) }

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// ProtectReconciler keeps the CRDs and webhook configurations as built.
type ProtectReconciler struct {
	Client client.Client
	// APIReader reads past the cache: only metadata of these kinds is
	// watched.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Log       Log
	Config    ProtectConfig
	// Keys, when set, are the public keys the manager publishes in its
	// ConfigMap in KeysNamespace: kept as they are too, since whoever can
	// add a key there can sign anything the gate trusts.
	Keys          attest.PublicKeys
	KeysNamespace string

	crds       []*unstructured.Unstructured
	mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	validating *admissionregistrationv1.ValidatingWebhookConfiguration
	// unrecorded are restorations made while Chron could not record them:
	// the restoration is not held back for the record, and the record is
	// retried until it is written (Reconcile runs one at a time).
	unrecorded []restoration
}

// restoration is one put-back object, as Chron records it.
type restoration struct {
	obj *unstructured.Unstructured
	msg string
}

// load reads the built-in manifests and points the webhooks at this
// install's Service.
func (r *ProtectReconciler) load() error {
	files, err := fs.Glob(config.Manifests, "crd/bases/*.yaml")
	if err != nil {
		return fmt.Errorf("self-protection: reading the built-in CRDs: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("self-protection: no CRDs built in")
	}
	for _, f := range files {
		b, _ := config.Manifests.ReadFile(f)
		u := &unstructured.Unstructured{}
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&u.Object); err != nil {
			return fmt.Errorf("self-protection: %s: %w", f, err)
		}
		r.crds = append(r.crds, u)
	}
	b, _ := config.Manifests.ReadFile("webhook/manifests.yaml")
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	r.mutating = &admissionregistrationv1.MutatingWebhookConfiguration{}
	r.validating = &admissionregistrationv1.ValidatingWebhookConfiguration{}
	for _, into := range []any{r.mutating, r.validating} {
		if err := dec.Decode(into); err != nil {
			return fmt.Errorf("self-protection: webhook/manifests.yaml: %w", err)
		}
	}
	svc := func(c *admissionregistrationv1.WebhookClientConfig) {
		if r.Config.URL != "" {
			url := r.Config.URL + ptrDeref(c.Service.Path) // as given: envtest's own configurations read "https://host:port/" + path
			c.URL, c.Service = &url, nil
			return
		}
		c.Service.Namespace, c.Service.Name, c.Service.Port = r.Config.Namespace, r.Config.Service, ptrInt32(443)
	}
	r.mutating.Name, r.validating.Name = r.Config.Mutating, r.Config.Validating
	for i := range r.mutating.Webhooks {
		svc(&r.mutating.Webhooks[i].ClientConfig)
	}
	for i := range r.validating.Webhooks {
		svc(&r.validating.Webhooks[i].ClientConfig)
	}
	return nil
}

func ptrInt32(v int32) *int32 { return &v }

func ptrDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (r *ProtectReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	err := r.restore(ctx)
	if r.unrecorded = r.recordAll(ctx, r.unrecorded); len(r.unrecorded) > 0 && err == nil {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil // the records wait in memory
	}
	return ctrl.Result{}, err
}

// restore puts back every object that differs from the built-in manifests.
func (r *ProtectReconciler) restore(ctx context.Context) error {
	var restored bool
	for _, crd := range r.crds {
		did, err := r.keep(ctx, crd.DeepCopy(), func(live, want *unstructured.Unstructured) {
			live.Object["spec"] = want.Object["spec"]
		})
		if err != nil {
			return err
		}
		restored = restored || did
	}
	for _, want := range []client.Object{r.mutating.DeepCopy(), r.validating.DeepCopy()} {
		u, err := toUnstructured(want)
		if err != nil {
			return err
		}
		did, err := r.keep(ctx, u, func(live, want *unstructured.Unstructured) {
			live.Object["webhooks"] = withCABundles(want, live)
		})
		if err != nil {
			return err
		}
		restored = restored || did
	}
	if r.Keys != nil {
		did, err := publishKeys(ctx, r.APIReader, r.Client, r.KeysNamespace, r.Keys)
		if err != nil {
			return fmt.Errorf("self-protection: %w", err)
		}
		if did != "" {
			cm := &unstructured.Unstructured{}
			cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
			if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.KeysNamespace, Name: AttestationKeysConfigMap}, cm); err != nil {
				return fmt.Errorf("self-protection: reading ConfigMap %s: %w", AttestationKeysConfigMap, err)
			}
			what := map[string]string{"created": "was deleted; the manager re-created it with its public keys",
				"restored": "was edited; the manager put back exactly its public keys"}[did]
			r.report(ctx, cm, "ConfigMap "+r.KeysNamespace+"/"+AttestationKeysConfigMap+" "+what)
		}
	}
	if restored && r.Config.CABundle != nil {
		if err := r.Config.CABundle(ctx); err != nil {
			return fmt.Errorf("self-protection: re-injecting the webhook CA: %w", err)
		}
	}
	return nil
}

// keep makes the live object what want says (set copies the owned part),
// and reports whether it had to: a missing object is created, a changed
// one updated. An unchanged one is left alone: the server's dry run of the
// update, with its defaults, is compared with what is stored.
func (r *ProtectReconciler) keep(ctx context.Context, want *unstructured.Unstructured, set func(live, want *unstructured.Unstructured)) (bool, error) {
	what := want.GetKind() + " " + want.GetName()
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(want.GroupVersionKind())
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: want.GetName()}, live)
	switch {
	case apierrors.IsNotFound(err):
		want.SetLabels(map[string]string{labelName: "claiim", labelManagedBy: gateFieldOwner})
		if err := r.Client.Create(ctx, want); err != nil {
			return false, fmt.Errorf("self-protection: re-creating %s: %w", what, err)
		}
		r.report(ctx, want, what+" was deleted; the manager re-created it from its built-in manifest")
		return true, nil
	case err != nil:
		return false, fmt.Errorf("self-protection: reading %s: %w", what, err)
	}
	stored := live.DeepCopy()
	set(live, want)
	dry := live.DeepCopy()
	if err := r.Client.Update(ctx, dry, client.DryRunAll); err != nil {
		return false, fmt.Errorf("self-protection: checking %s: %w", what, err)
	}
	if reflect.DeepEqual(owned(dry), owned(stored)) {
		return false, nil
	}
	if err := r.Client.Update(ctx, live); err != nil {
		return false, fmt.Errorf("self-protection: restoring %s: %w", what, err)
	}
	r.report(ctx, live, what+" was edited; the manager restored it from its built-in manifest")
	return true, nil
}

// owned is the part of an object the manager keeps.
func owned(u *unstructured.Unstructured) any {
	if u.GetKind() == crdGVK.Kind {
		return u.Object["spec"]
	}
	return u.Object["webhooks"]
}

// withCABundles is want's webhooks, each with the caBundle the live one of
// the same name has: the CA is kept by the certificate's own machinery. A
// webhook new in this release gets the CA its siblings have: they all call
// the same server.
func withCABundles(want, live *unstructured.Unstructured) []any {
	cas := map[string]any{}
	var sibling any
	lhooks, _, _ := unstructured.NestedSlice(live.Object, "webhooks")
	for _, h := range lhooks {
		m, _ := h.(map[string]any)
		if ca, ok, _ := unstructured.NestedFieldNoCopy(m, "clientConfig", "caBundle"); ok && ca != "" {
			cas[fmt.Sprint(m["name"])] = ca
			if sibling == nil {
				sibling = ca
			}
		}
	}
	whooks, _, _ := unstructured.NestedSlice(want.Object, "webhooks")
	for _, h := range whooks {
		m := h.(map[string]any)
		ca, ok := cas[fmt.Sprint(m["name"])]
		if !ok {
			ca = sibling
		}
		if ca != nil {
			_ = unstructured.SetNestedField(m, ca, "clientConfig", "caBundle")
		}
	}
	return whooks
}

func toUnstructured(o client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	switch o.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		u.SetGroupVersionKind(admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration"))
	default:
		u.SetGroupVersionKind(admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration"))
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// report tells of a restoration: the log, the metric and the event at
// once; the Chron row when Reconcile ends (recordAll).
func (r *ProtectReconciler) report(ctx context.Context, obj *unstructured.Unstructured, msg string) {
	ctrl.LoggerFrom(ctx).Info("self-protection: "+msg, "kind", obj.GetKind(), "name", obj.GetName())
	restoredTotal.WithLabelValues(obj.GetKind(), obj.GetName()).Inc()
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "Restored", "SelfProtect", "%s", msg)
	}
	r.unrecorded = append(r.unrecorded, restoration{obj: obj.DeepCopy(), msg: msg})
}

// recordAll writes the restorations' Chron rows and returns those it could
// not write, to try again at the next Reconcile (requeued until then).
func (r *ProtectReconciler) recordAll(ctx context.Context, rs []restoration) []restoration {
	var left []restoration
	for _, x := range rs {
		err := recordEvent(ctx, r.Log, x.obj.GetUID(), "restored/"+x.obj.GetResourceVersion(), &chron.Record{
			Kind: KindManifestRestored, Action: string(KindManifestRestored), Outcome: chron.OutcomeDeny, Reason: "MANIFEST_RESTORED",
			Message: x.msg + ". Find who changed it in the apiserver's audit log; CLAIIM objects changed meanwhile were not admitted under PIM " +
				"and are reported as such (condition Admitted=False, Chron admission.bypassed) until re-applied under a PIM session.",
			Context: map[string]any{"kind": x.obj.GetKind(), "name": x.obj.GetName()},
		})
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "self-protection: recording a restoration in Chron; retrying", "kind", x.obj.GetKind(), "name", x.obj.GetName())
			left = append(left, x)
		}
	}
	return left
}

// SetupWithManager checks everything at start and whenever one of the
// objects changes or disappears. Only their metadata is watched; the
// objects themselves are read from the apiserver.
func (r *ProtectReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.load(); err != nil {
		return err
	}
	names := map[string]bool{r.Config.Mutating: true, r.Config.Validating: true}
	for _, c := range r.crds {
		names[c.GetName()] = true
	}
	key := reconcile.Request{NamespacedName: types.NamespacedName{Name: "self-protection"}}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{key} })
	ours := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return names[o.GetName()] }))
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "self-protection"}}}
	b := ctrl.NewControllerManagedBy(mgr).Named("selfprotect").WatchesRawSource(source.Channel(start, toKey))
	for _, gvk := range []schema.GroupVersionKind{crdGVK,
		admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration"),
		admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration")} {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		b = b.WatchesMetadata(m, toKey, ours)
	}
	if r.Keys != nil {
		// The manager's cache holds no such ConfigMap: a cache of this one.
		keys, err := cache.New(mgr.GetConfig(), cache.Options{Scheme: mgr.GetScheme(), ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{r.KeysNamespace: {}},
				Field: fields.OneTermEqualSelector("metadata.name", AttestationKeysConfigMap)}}})
		if err != nil {
			return fmt.Errorf("self-protection: a cache of the published keys: %w", err)
		}
		if err := mgr.Add(keys); err != nil {
			return err
		}
		b = b.WatchesRawSource(source.Kind[client.Object](keys, &corev1.ConfigMap{}, toKey))
	}
	return b.Complete(r)
}
