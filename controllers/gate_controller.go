package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// GateConfig is how the manager runs the gate in its cluster.
type GateConfig struct {
	Namespace string
	Image     string
	Replicas  int32
	Port      int32
	// DatabaseSecret names a Secret in Namespace whose DATABASE_URL key
	// points the gate at Chron.
	DatabaseSecret string
	Resources      corev1.ResourceRequirements
}

// Names and labels of the gate's objects.
const (
	GateName         = "claiim-gate"
	gateFieldOwner   = "claiim-manager"
	labelComponent   = "app.kubernetes.io/component"
	labelName        = "app.kubernetes.io/name"
	labelManagedBy   = "app.kubernetes.io/managed-by"
	annotationConfig = "claiim.io/gate-config-hash"
)

// GateReconciler keeps the gate's Deployment, Service, ServiceAccount,
// RBAC, PodDisruptionBudget and NetworkPolicy exactly as configured: any
// edit of a field it owns is undone (server-side apply, forced), anything
// deleted is re-created, and a configuration change rolls the pods.
type GateReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	Config   GateConfig
}

// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

func (r *GateReconciler) gateLabels() map[string]string {
	return map[string]string{labelName: "claiim", labelComponent: "gate", labelManagedBy: gateFieldOwner}
}

// Desired returns every object of the gate, as applied.
func (r *GateReconciler) Desired() []client.Object {
	c := r.Config
	l := r.gateLabels()
	sel := map[string]string{labelName: "claiim", labelComponent: "gate"}
	meta := func(name string, namespaced bool) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Labels: l}
		if namespaced {
			m.Namespace = c.Namespace
		}
		return m
	}
	cfgHash := configHash(c)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(GateName, true),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(c.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: map[string]string{annotationConfig: cfgHash}},
				Spec: corev1.PodSpec{
					ServiceAccountName: GateName,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: "gate", Image: c.Image,
						Args: []string{"gate", fmt.Sprintf("--listen=:%d", c.Port), "--metrics-bind-address=:8182", "--migrate=false"},
						Env: append([]corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: c.DatabaseSecret}, Key: "DATABASE_URL"}}},
						}, gcEnv(c.Resources)...),
						Ports:         []corev1.ContainerPort{{Name: "api", ContainerPort: c.Port}, {Name: "metrics", ContainerPort: 8182}},
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("api")}}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("api")}},
							PeriodSeconds: 2},
						Resources: c.Resources,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					}},
				},
			},
		},
	}
	return []client.Object{
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(GateName, true)},
		&rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: meta(GateName, false),
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"claiim.io"}, Resources: []string{"aiorgs", "skills", "policies", "agents", "crossorggrants"}, Verbs: []string{"get", "list", "watch"}},
				// In-cluster agents present projected ServiceAccount tokens.
				{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			}},
		&rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}, ObjectMeta: meta(GateName, false),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: GateName},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: GateName, Namespace: c.Namespace}}},
		dep,
		&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: meta(GateName, true),
			Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Name: "api", Port: c.Port, TargetPort: intstr.FromString("api")}}}},
		&policyv1.PodDisruptionBudget{TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"}, ObjectMeta: meta(GateName, true),
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: sel}}},
		// Agents anywhere in the cluster reach the API; nothing else is open.
		&networkingv1.NetworkPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}, ObjectMeta: meta(GateName, true),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: sel},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(c.Port))}, {Port: ptr.To(intstr.FromInt32(8182))}},
				}},
			}},
	}
}

// configHash changes whenever the configuration does, so the pod template
// changes and the Deployment rolls.
func configHash(c GateConfig) string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Reconcile applies every object. What it had to change or re-create, and
// any failure, is an event on the gate's Deployment (kubectl describe
// deployment claiim-gate), so drift and its correction are visible.
func (r *GateReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var changed []string
	for _, obj := range r.Desired() {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		before := ""
		cur := obj.DeepCopyObject().(client.Object)
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil {
			before = cur.GetResourceVersion()
		}
		if err := r.Client.Patch(ctx, obj, client.Apply, client.FieldOwner(gateFieldOwner), client.ForceOwnership); err != nil { //nolint:staticcheck // typed apply
			err = fmt.Errorf("applying %s %s: %w", kind, obj.GetName(), err)
			r.event(ctx, corev1.EventTypeWarning, "ApplyFailed", err.Error())
			return ctrl.Result{}, err
		}
		switch {
		case before == "":
			changed = append(changed, "created "+kind)
		case before != obj.GetResourceVersion():
			changed = append(changed, "restored "+kind)
		}
	}
	if len(changed) > 0 {
		ctrl.LoggerFrom(ctx).Info("gate objects applied", "changes", changed)
		r.event(ctx, corev1.EventTypeNormal, "Reconciled", strings.Join(changed, ", "))
	}
	return ctrl.Result{}, nil
}

func (r *GateReconciler) event(ctx context.Context, typ, reason, msg string) {
	if r.Recorder == nil {
		return
	}
	if dep := r.deployment(ctx); dep != nil {
		r.Recorder.Eventf(dep, nil, typ, reason, "Reconcile", "%s", msg)
	}
}

func (r *GateReconciler) deployment(ctx context.Context) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	if r.Client.Get(ctx, types.NamespacedName{Namespace: r.Config.Namespace, Name: GateName}, d) != nil {
		return nil
	}
	return d
}

// SetupWithManager reconciles one key, "the gate", at start and whenever
// any of its objects changes or disappears.
func (r *GateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Config.Namespace, Name: GateName}}
	toGate := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{key} })
	mine := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetName() == GateName && (o.GetNamespace() == "" || o.GetNamespace() == r.Config.Namespace)
	}))
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: GateName, Namespace: r.Config.Namespace}}}
	b := ctrl.NewControllerManagedBy(mgr).Named("gate").
		WatchesRawSource(source.Channel(start, toGate))
	for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{},
		&networkingv1.NetworkPolicy{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}} {
		b = b.Watches(o, toGate, mine)
	}
	return b.Complete(r)
}

// gcEnv bounds the gate's heap below its memory limit: the gate raises
// GOGC for throughput (server.TuneGC), and GOMEMLIMIT at 90% of the limit
// makes the collector work harder before the kernel would kill the pod.
func gcEnv(r corev1.ResourceRequirements) []corev1.EnvVar {
	limit, ok := r.Limits[corev1.ResourceMemory]
	if !ok || limit.Value() <= 0 {
		return nil
	}
	return []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: fmt.Sprint(limit.Value() / 10 * 9)}}
}
