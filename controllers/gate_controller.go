package controllers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
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

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
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
	// TLS makes the gate serve HTTPS with the certificate the manager
	// keeps in GateTLSSecret (gate_tls.go).
	TLS bool
	// KeysNamespace holds the manager's published attestation keys, which
	// the gate verifies status with (default: Namespace).
	KeysNamespace string
	// ChronStreams is the size of the gate's set of Chron stream Leases;
	// zero means two per replica plus one (a rollout's surge, and pods
	// still draining, hold theirs too).
	ChronStreams int32
}

// chronStreams is the size of the gate's stream set.
func (c GateConfig) chronStreams() int {
	if c.ChronStreams > 0 {
		return int(c.ChronStreams)
	}
	return int(2*c.Replicas + 1)
}

// Names and labels of the gate's objects.
const (
	GateName         = "claiim-gate"
	gateFieldOwner   = "claiim-manager"
	labelComponent   = "app.kubernetes.io/component"
	labelName        = "app.kubernetes.io/name"
	labelManagedBy   = "app.kubernetes.io/managed-by"
	annotationConfig = "claiim.io/gate-config-hash"
	chronKeysDir     = "/etc/claiim/chron-keys"
	// imageGroup is the group of the image's user (65532:65532, the
	// Dockerfile's USER, distroless's nonroot).
	imageGroup = 65532
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
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update

func (r *GateReconciler) gateLabels() map[string]string {
	return map[string]string{labelName: "claiim", labelComponent: "gate", labelManagedBy: gateFieldOwner}
}

// gateObject is one of the gate's objects: the apply configuration the
// manager owns, its metadata (the apply response is decoded into it, so
// its resourceVersion afterwards tells whether the apply changed
// anything), and an empty object of its kind to read the current one into.
type gateObject struct {
	apply interface {
		runtime.ApplyConfiguration
		GetKind() *string
	}
	meta    *metav1ac.ObjectMetaApplyConfiguration
	current client.Object
}

// desired returns every object of the gate, as applied.
func (r *GateReconciler) desired() []gateObject {
	c := r.Config
	l := r.gateLabels()
	sel := map[string]string{labelName: "claiim", labelComponent: "gate"}
	dbSecret := corev1ac.SecretKeySelector().WithKey("DATABASE_URL")
	if c.DatabaseSecret != "" { // an empty name is left out, not sent as ""
		dbSecret.WithName(c.DatabaseSecret)
	}
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName("POD_NAME").WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.name"))),
		corev1ac.EnvVar().WithName("POD_NAMESPACE").WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.namespace"))),
		corev1ac.EnvVar().WithName("DATABASE_URL").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(dbSecret)),
	}
	if limit := goMemLimit(c.Resources); limit != "" {
		env = append(env, corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValue(limit))
	}
	gate := corev1ac.Container().WithName("gate").WithImage(c.Image).
		WithArgs("gate", fmt.Sprintf("--listen=:%d", c.Port), fmt.Sprintf("--metrics-bind-address=:%d", gateMetricPort),
			fmt.Sprintf("--attestation-keys=%s/%s", cmp.Or(c.KeysNamespace, c.Namespace), AttestationKeysConfigMap),
			fmt.Sprintf("--chron-streams=%d", c.chronStreams()), "--chron-keys="+chronKeysDir).
		WithEnv(env...).
		// The chain and signing keys come as a mounted Secret: the gate's
		// ServiceAccount may read no Secret through the API, and only
		// this pod's kubelet reads this one.
		WithVolumeMounts(corev1ac.VolumeMount().WithName("chron-keys").WithMountPath(chronKeysDir).WithReadOnly(true)).
		WithPorts(corev1ac.ContainerPort().WithName("api").WithContainerPort(c.Port),
			corev1ac.ContainerPort().WithName("metrics").WithContainerPort(gateMetricPort)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/health").WithPort(intstr.FromString("api")))).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/ready").WithPort(intstr.FromString("api"))).
			WithPeriodSeconds(2)).
		WithResources(resources(c.Resources)).
		WithSecurityContext(corev1ac.SecurityContext().WithAllowPrivilegeEscalation(false).WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")))
	pod := corev1ac.PodSpec().WithServiceAccountName(GateName).
		WithVolumes(corev1ac.Volume().WithName("chron-keys").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(chronlease.GateKeysSecret).WithDefaultMode(0o440))).
		// fsGroup: the kubelet gives the mounted keys (0440) to the image's
		// group, else the non-root gate cannot read them (seen only with a
		// real kubelet: test/cluster).
		WithSecurityContext(corev1ac.PodSecurityContext().WithRunAsNonRoot(true).WithFSGroup(imageGroup).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))
	c.withTLS(gate, pod)
	pod.WithContainers(gate)
	dep := appsv1ac.Deployment(GateName, c.Namespace).WithLabels(l).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(c.Replicas).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(sel)).
		WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxUnavailable(intstr.FromInt32(0)).WithMaxSurge(intstr.FromInt32(1)))).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(l).WithAnnotations(map[string]string{annotationConfig: configHash(c)}).
			WithSpec(pod)))

	sa := corev1ac.ServiceAccount(GateName, c.Namespace).WithLabels(l)
	role := rbacv1ac.ClusterRole(GateName).WithLabels(l).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("claiim.io").WithResources("aiorgs", "skills", "policies", "agents", "crossorggrants", "actionapprovals").
			WithVerbs("get", "list", "watch"),
		// The manager's public attestation keys, and nothing else of ConfigMaps.
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("configmaps").WithResourceNames(AttestationKeysConfigMap).
			WithVerbs("get", "list", "watch"),
		// In-cluster agents present projected ServiceAccount tokens, and
		// metrics scrapers their tokens, which the gate authorizes.
		rbacv1ac.PolicyRule().WithAPIGroups("authentication.k8s.io").WithResources("tokenreviews").WithVerbs("create"),
		rbacv1ac.PolicyRule().WithAPIGroups("authorization.k8s.io").WithResources("subjectaccessreviews").WithVerbs("create"))
	binding := rbacv1ac.ClusterRoleBinding(GateName).WithLabels(l).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(GateName)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(GateName).WithNamespace(c.Namespace))
	// The gate's Chron streams: it may read and renew the Leases of its
	// set, by name, and nothing else of its namespace (Reconcile creates
	// them: create cannot be limited to names).
	leaseRole := rbacv1ac.Role(GateName, c.Namespace).WithLabels(l).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("coordination.k8s.io").WithResources("leases").
			WithResourceNames(chronlease.LeaseNames(chron.ScopeGate, c.chronStreams())...).WithVerbs("get", "update"))
	leaseBinding := rbacv1ac.RoleBinding(GateName, c.Namespace).WithLabels(l).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(GateName)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(GateName).WithNamespace(c.Namespace))
	svc := corev1ac.Service(GateName, c.Namespace).WithLabels(l).WithSpec(corev1ac.ServiceSpec().WithSelector(sel).
		WithPorts(corev1ac.ServicePort().WithName("api").WithPort(c.Port).WithTargetPort(intstr.FromString("api"))))
	pdb := policyv1ac.PodDisruptionBudget(GateName, c.Namespace).WithLabels(l).WithSpec(policyv1ac.PodDisruptionBudgetSpec().
		WithMinAvailable(intstr.FromInt32(1)).WithSelector(metav1ac.LabelSelector().WithMatchLabels(sel)))
	// The API admits only namespaces that host Agents (the manager labels
	// them); metrics, which answer only authorized scrapers, any namespace.
	// Enforced only where the network plugin enforces NetworkPolicy.
	netpol := networkingv1ac.NetworkPolicy(GateName, c.Namespace).WithLabels(l).WithSpec(networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(sel)).
		WithPolicyTypes(networkingv1.PolicyTypeIngress).
		WithIngress(
			networkingv1ac.NetworkPolicyIngressRule().
				WithFrom(networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(
					metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelAgentsNamespace: "true"}))).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithPort(intstr.FromInt32(c.Port))),
			networkingv1ac.NetworkPolicyIngressRule().
				WithFrom(networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector())).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithPort(intstr.FromInt32(gateMetricPort)))))

	return []gateObject{
		{sa, sa.ObjectMetaApplyConfiguration, &corev1.ServiceAccount{}},
		{role, role.ObjectMetaApplyConfiguration, &rbacv1.ClusterRole{}},
		{binding, binding.ObjectMetaApplyConfiguration, &rbacv1.ClusterRoleBinding{}},
		{leaseRole, leaseRole.ObjectMetaApplyConfiguration, &rbacv1.Role{}},
		{leaseBinding, leaseBinding.ObjectMetaApplyConfiguration, &rbacv1.RoleBinding{}},
		{dep, dep.ObjectMetaApplyConfiguration, &appsv1.Deployment{}},
		{svc, svc.ObjectMetaApplyConfiguration, &corev1.Service{}},
		{pdb, pdb.ObjectMetaApplyConfiguration, &policyv1.PodDisruptionBudget{}},
		{netpol, netpol.ObjectMetaApplyConfiguration, &networkingv1.NetworkPolicy{}},
	}
}

// resources is r as an apply configuration, with r's empty parts left out
// as its JSON leaves them out.
func resources(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	ac := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		ac.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		ac.WithRequests(r.Requests)
	}
	for _, claim := range r.Claims {
		cl := corev1ac.ResourceClaim().WithName(claim.Name)
		if claim.Request != "" {
			cl.WithRequest(claim.Request)
		}
		ac.WithClaims(cl)
	}
	return ac
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
	for _, o := range r.desired() {
		kind := ptr.Deref(o.apply.GetKind(), "")
		key := client.ObjectKey{Namespace: ptr.Deref(o.meta.Namespace, ""), Name: ptr.Deref(o.meta.Name, "")}
		before := ""
		if err := r.Client.Get(ctx, key, o.current); err == nil {
			before = o.current.GetResourceVersion()
		}
		if err := r.Client.Apply(ctx, o.apply, client.FieldOwner(gateFieldOwner), client.ForceOwnership); err != nil {
			err = fmt.Errorf("applying %s %s: %w", kind, key.Name, err)
			r.event(ctx, corev1.EventTypeWarning, "ApplyFailed", err.Error())
			return ctrl.Result{}, err
		}
		switch {
		case before == "":
			changed = append(changed, "created "+kind)
		case before != ptr.Deref(o.meta.ResourceVersion, ""):
			changed = append(changed, "restored "+kind)
		}
	}
	made, err := r.ensureLeases(ctx)
	if err != nil {
		r.event(ctx, corev1.EventTypeWarning, "ApplyFailed", err.Error())
		return ctrl.Result{}, err
	}
	changed = append(changed, made...)
	if len(changed) > 0 {
		ctrl.LoggerFrom(ctx).Info("gate objects applied", "changes", changed)
		r.event(ctx, corev1.EventTypeNormal, "Reconciled", strings.Join(changed, ", "))
	}
	return ctrl.Result{}, nil
}

// ensureLeases creates the gate's Chron stream Leases that are missing;
// it never touches one that exists (the gates renew them every few
// seconds, and their checkpoints are evidence).
func (r *GateReconciler) ensureLeases(ctx context.Context) ([]string, error) {
	var made []string
	for _, name := range chronlease.LeaseNames(chron.ScopeGate, r.Config.chronStreams()) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Config.Namespace, Labels: r.gateLabels()}}
		err := r.Client.Create(ctx, l)
		switch {
		case err == nil:
			made = append(made, "created Lease "+name)
		case !apierrors.IsAlreadyExists(err):
			return made, fmt.Errorf("creating the gate's Chron stream Lease %s: %w", name, err)
		}
	}
	return made, nil
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
		&networkingv1.NetworkPolicy{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		b = b.Watches(o, toGate, mine)
	}
	return b.Complete(r)
}

// goMemLimit bounds the gate's heap below its memory limit: the gate
// raises GOGC for throughput (server.TuneGC), and GOMEMLIMIT at 90% of the
// limit makes the collector work harder before the kernel would kill the
// pod. "" when there is no memory limit.
func goMemLimit(r corev1.ResourceRequirements) string {
	limit, ok := r.Limits[corev1.ResourceMemory]
	if !ok || limit.Value() <= 0 {
		return ""
	}
	return fmt.Sprint(limit.Value() / 10 * 9)
}
