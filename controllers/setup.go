// Package controllers reconciles the CLAIIM resources. Setup is shared by
// the manager binary and the tests, so both run exactly the same wiring.
package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// DefaultGateURL is the in-cluster address of the gate Service's API.
const DefaultGateURL = "http://claiim-gate.claiim-system.svc:8181/v"

// DefaultNamespace is the manager's namespace when none is given.
const DefaultNamespace = "claiim-system"

// Options configures the reconcilers.
type Options struct {
	// GateURL is written into every agent's token Secret.
	GateURL string
	// Clock stamps times into status; a fake one in tests.
	Clock clock.PassiveClock
	// Log records control-plane events in Chron; nil records nothing.
	Log Log
	// Gate, when set, makes the manager run and keep the gate in-cluster.
	Gate *GateConfig
	// Signer attests what the gate and admission trust. When nil, Setup
	// loads (or creates) the key in Namespace (LoadSigner).
	Signer *attest.Signer
	// Namespace is the manager's: where its attestation key lives.
	// Default: the gate's namespace, else claiim-system.
	Namespace string
	// Protect, when set, makes the manager keep its CRDs and webhook
	// configurations as built (selfprotect.go).
	Protect *ProtectConfig
	// History keeps every generation of AIOrgs, Skills, Policies and
	// Agents (history.go); nil keeps none (no Chron).
	History HistoryStore
	// PIMPendingTTL is how long a PIMRequest may wait for its approvals
	// before the manager expires it; default 24h.
	PIMPendingTTL time.Duration
	// AdmitExisting runs the upgrade step once (admitexisting.go): objects
	// from before admission stamps existed are stamped as they are. Needs
	// the webhooks. Off, objects without a stamp are reported at once.
	AdmitExisting bool
	// ChronPool, when set, lets the leader materialize the gates' approval
	// requests as ActionApprovals (approvals.go).
	ChronPool *pgxpool.Pool
	// ApprovalRetention keeps expired ActionApprovals this long (default
	// DefaultApprovalRetention).
	ApprovalRetention time.Duration
}

// Field indexes that let a change of one object find the others it affects.
const (
	indexParent       = "spec.parent"
	indexOrg          = "spec.org"
	indexSkillName    = "spec.skillRef.name"
	indexReceivingOrg = "spec.receivingOrg"
	indexTokenID      = "status.token.id"
)

// Setup registers the field indexes and every reconciler with mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.GateURL == "" {
		opts.GateURL = DefaultGateURL
		if opts.Gate != nil {
			opts.GateURL = opts.Gate.URL()
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.PIMPendingTTL <= 0 {
		opts.PIMPendingTTL = claiimv1.DefaultPIMPendingTTL
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
		if opts.Gate != nil {
			opts.Namespace = opts.Gate.Namespace
		}
	}
	if opts.Gate != nil && opts.Gate.KeysNamespace == "" {
		g := *opts.Gate
		g.KeysNamespace = opts.Namespace
		opts.Gate = &g
	}
	if opts.Signer == nil {
		s, err := LoadSigner(ctx, mgr.GetAPIReader(), mgr.GetClient(), opts.Namespace)
		if err != nil {
			return err
		}
		opts.Signer = s
	}
	idx := mgr.GetFieldIndexer()
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&claiimv1.AIOrg{}, indexParent, func(o client.Object) []string { return nonEmpty(string(o.(*claiimv1.AIOrg).Spec.Parent)) }},
		{&claiimv1.Skill{}, indexOrg, func(o client.Object) []string { return nonEmpty(string(o.(*claiimv1.Skill).Spec.Org)) }},
		{&claiimv1.Policy{}, indexOrg, func(o client.Object) []string { return nonEmpty(string(o.(*claiimv1.Policy).Spec.Org)) }},
		{&claiimv1.Agent{}, indexOrg, func(o client.Object) []string { return nonEmpty(string(o.(*claiimv1.Agent).Spec.Org)) }},
		{&claiimv1.CrossOrgGrant{}, indexReceivingOrg, func(o client.Object) []string {
			return nonEmpty(string(o.(*claiimv1.CrossOrgGrant).Spec.ReceivingOrg))
		}},
		{&claiimv1.Agent{}, indexSkillName, func(o client.Object) []string { return nonEmpty(o.(*claiimv1.Agent).Spec.SkillRef.Name) }},
		{&claiimv1.Agent{}, indexTokenID, func(o client.Object) []string {
			if t := o.(*claiimv1.Agent).Status.Token; t != nil {
				return nonEmpty(t.ID)
			}
			return nil
		}},
	}
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", i.obj, i.field, err)
		}
	}

	rec := mgr.GetEventRecorder("claiim-manager")
	c := mgr.GetClient()
	if opts.ChronPool != nil {
		if err := mgr.Add(&ApprovalMaterializer{Pool: opts.ChronPool, Client: c, Signer: opts.Signer, Clock: opts.Clock,
			Retention: opts.ApprovalRetention}); err != nil {
			return fmt.Errorf("setting up the approval materializer: %w", err)
		}
	}
	adm := NewAdmission(opts.Signer, opts.Log, rec, !opts.AdmitExisting)
	if opts.History != nil {
		adm.History = &History{Store: opts.History, Log: opts.Log}
	}
	if opts.AdmitExisting {
		if err := mgr.Add(&admitExisting{Client: c, APIReader: mgr.GetAPIReader(), Namespace: opts.Namespace, Log: opts.Log, Admission: adm}); err != nil {
			return fmt.Errorf("setting up the admission upgrade step: %w", err)
		}
	}
	for name, r := range map[string]interface{ SetupWithManager(ctrl.Manager) error }{
		"aiorg":  &AIOrgReconciler{Client: c, Recorder: rec, Admission: adm},
		"skill":  &SkillReconciler{Client: c, Recorder: rec, Admission: adm},
		"policy": &PolicyReconciler{Client: c, Recorder: rec, Admission: adm},
		"agent": &AgentReconciler{Client: c, APIReader: mgr.GetAPIReader(), Recorder: rec, GateURL: opts.GateURL, Gate: opts.Gate, Clock: opts.Clock, Log: opts.Log,
			Signer: opts.Signer, Admission: adm},
		"pimrequest": &PIMRequestReconciler{Client: c, Recorder: rec, Clock: opts.Clock, Log: opts.Log, Signer: opts.Signer,
			PendingTTL: opts.PIMPendingTTL},
		"crossorggrant": &CrossOrgGrantReconciler{Client: c, Recorder: rec, Clock: opts.Clock, Log: opts.Log, Signer: opts.Signer, Admission: adm},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", name, err)
		}
	}
	if opts.Protect != nil {
		r := &ProtectReconciler{Client: c, APIReader: mgr.GetAPIReader(), Recorder: rec, Log: opts.Log, Config: *opts.Protect,
			Keys: opts.Signer.Public(), KeysNamespace: opts.Namespace}
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up self-protection: %w", err)
		}
	}
	if opts.Gate != nil {
		if err := (&GateReconciler{Client: c, Recorder: rec, Config: *opts.Gate}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the gate controller: %w", err)
		}
		if opts.Gate.TLS {
			if err := setupGateCertificate(mgr, *opts.Gate); err != nil {
				return fmt.Errorf("setting up the gate's certificate: %w", err)
			}
		}
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// CacheOptions limits what the manager caches: of Secrets only agent token
// Secrets (it never holds other Secrets in memory), and of the gate's kinds
// (ConfigMaps too: its published CA bundle) only the gate's own objects.
func CacheOptions() cache.Options {
	gate := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{labelName: "claiim", labelComponent: "gate"})}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:                {Label: labels.SelectorFromSet(labels.Set{claiimv1.LabelAgentToken: "true"})},
		&corev1.ConfigMap{}:             gate,
		&appsv1.Deployment{}:            gate,
		&corev1.Service{}:               gate,
		&corev1.ServiceAccount{}:        gate,
		&policyv1.PodDisruptionBudget{}: gate,
		&networkingv1.NetworkPolicy{}:   gate,
		&rbacv1.ClusterRole{}:           gate,
		&rbacv1.ClusterRoleBinding{}:    gate,
		&rbacv1.Role{}:                  gate,
		&rbacv1.RoleBinding{}:           gate,
	}}
}
