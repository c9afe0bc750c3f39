package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers/certs"
)

// The gate's transport. In a cluster the gate serves TLS under a CA the
// manager keeps (controllers/certs, Purpose "gate"); the CA bundle is
// published in a ConfigMap and copied into every agent's token Secret
// (CLAIIM_GATE_CA), which both clients trust. Only namespaces that host
// Agents (labelled by the manager) may reach the gate's API.
const (
	// GateTLSSecret holds the gate's serving pair and its CAs. Only
	// tls.crt and tls.key are mounted into the gate's pods; the CA keys
	// stay with the manager.
	GateTLSSecret = "claiim-gate-tls"
	// GateCAConfigMap publishes the CA bundle (key ca.crt).
	GateCAConfigMap = "claiim-gate-ca"
	// LabelAgentsNamespace marks a namespace that hosts Agents; the gate's
	// NetworkPolicy admits these namespaces only.
	LabelAgentsNamespace = "claiim.io/agents"

	gateCAKey      = "ca.crt"
	gateTLSDir     = "/etc/claiim/gate-tls"
	gateTLSVolume  = "tls"
	gateMetricPort = 8182
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;patch

// URL is the gate API's in-cluster address, as agents are given it.
func (c GateConfig) URL() string {
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s.%s.svc:%d/v", scheme, GateName, c.Namespace, c.Port)
}

// withTLS mounts the serving pair into the gate container and probes it
// over HTTPS; without TLS it leaves the container as it is.
func (c GateConfig) withTLS(gate *corev1ac.ContainerApplyConfiguration, pod *corev1ac.PodSpecApplyConfiguration) {
	if !c.TLS {
		return
	}
	gate.WithArgs("--tls-cert-dir=" + gateTLSDir).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(gateTLSVolume).WithMountPath(gateTLSDir).WithReadOnly(true))
	gate.LivenessProbe.HTTPGet.WithScheme(corev1.URISchemeHTTPS)
	gate.ReadinessProbe.HTTPGet.WithScheme(corev1.URISchemeHTTPS)
	pod.WithVolumes(corev1ac.Volume().WithName(gateTLSVolume).WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(GateTLSSecret).WithDefaultMode(0o440).
		WithItems(corev1ac.KeyToPath().WithKey("tls.crt").WithPath("tls.crt"),
			corev1ac.KeyToPath().WithKey("tls.key").WithPath("tls.key"))))
}

// setupGateCertificate keeps the gate's serving certificate as the
// webhook's is kept: the leader issues and renews it (the same CA across
// renewals, the next CA published halfway through the current one's life)
// and publishes the CA bundle; the kubelet puts the pair into the gate's
// pods, whose watcher reloads it. A deleted or edited Secret is seen by
// the watch (every replica) and issued again by the leader.
func setupGateCertificate(mgr ctrl.Manager, gate GateConfig) error {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	rot := &certs.Rotator{Client: direct, Namespace: gate.Namespace, SecretName: GateTLSSecret,
		Service: GateName, Purpose: "gate", Publish: PublishGateCA(direct, gate.Namespace)}
	if err := mgr.Add(rot); err != nil {
		return err
	}
	return mgr.Add(rot.Reloader(cs))
}

// PublishGateCA returns the certs.Rotator Publish hook of the gate's
// certificate: it keeps the CA bundle in the GateCAConfigMap, from where
// the agent reconciler copies it into token Secrets.
func PublishGateCA(c client.Client, namespace string) func(context.Context, []byte) error {
	return func(ctx context.Context, ca []byte) error {
		cm := corev1ac.ConfigMap(GateCAConfigMap, namespace).
			WithLabels(map[string]string{labelName: "claiim", labelComponent: "gate", labelManagedBy: gateFieldOwner}).
			WithData(map[string]string{gateCAKey: string(ca)})
		return c.Apply(ctx, cm, client.FieldOwner(gateFieldOwner), client.ForceOwnership)
	}
}

// gateCA is the published CA bundle, "" until the manager has issued the
// gate's certificate (agents then get it on the ConfigMap's creation).
func (r *AgentReconciler) gateCA(ctx context.Context) (string, error) {
	if r.Gate == nil || !r.Gate.TLS {
		return "", nil
	}
	cm := &corev1.ConfigMap{}
	err := r.Get(ctx, types.NamespacedName{Namespace: r.Gate.Namespace, Name: GateCAConfigMap}, cm)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the gate's CA bundle (ConfigMap %s/%s): %w", r.Gate.Namespace, GateCAConfigMap, err)
	}
	return cm.Data[gateCAKey], nil
}

// gateKeys are the non-secret keys of a token Secret: where the gate is
// and, when it serves TLS, which CAs to trust.
func (r *AgentReconciler) gateKeys(ctx context.Context) (map[string]string, error) {
	keys := map[string]string{claiimv1.SecretKeyGateURL: r.GateURL}
	ca, err := r.gateCA(ctx)
	if err != nil {
		return nil, err
	}
	if ca != "" {
		keys[claiimv1.SecretKeyGateCA] = ca
	}
	return keys, nil
}

// labelNamespace marks (or, when no Agent is left there, unmarks) the
// namespace as hosting Agents, so the gate's NetworkPolicy admits it.
// Nothing to do when the manager does not run the gate.
func (r *AgentReconciler) labelNamespace(ctx context.Context, ns string) error {
	if r.Gate == nil {
		return nil
	}
	agents := &claiimv1.AgentList{}
	if err := r.List(ctx, agents, client.InNamespace(ns), client.Limit(1)); err != nil {
		return fmt.Errorf("listing agents in namespace %s: %w", ns, err)
	}
	want := len(agents.Items) > 0
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: ns}, n); err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, has := n.Labels[LabelAgentsNamespace]; has == want {
		return nil
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, LabelAgentsNamespace))
	if want {
		patch = []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, LabelAgentsNamespace))
	}
	if err := r.Patch(ctx, n, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("labelling namespace %s %s: %w", ns, LabelAgentsNamespace, err)
	}
	return nil
}
