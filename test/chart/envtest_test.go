package chart

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/test/testenv"
)

// One control plane serves every test of the package that needs one; it
// starts on first use, so -short runs start nothing.
var (
	envOnce sync.Once
	env     *testenv.Env
	envErr  error
)

func controlPlane(t *testing.T) *testenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs envtest")
	}
	envOnce.Do(func() {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
		env, envErr = testenv.Launch(testenv.Options{Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}}}})
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test environment:", err)
		}
	}
	os.Exit(code)
}

// Every object of three renders is accepted by a real kube-apiserver with
// the CRDs installed (server-side apply, dry-run: nothing is stored).
// cert-manager's kinds are not installed in envtest; they are checked to
// parse and name what they must.
func TestRenderedObjectsDryRun(t *testing.T) {
	needsHelm(t)
	c := controlPlane(t).Client
	ctx := context.Background()
	for _, set := range [][]string{
		nil,
		{"webhook.certManager.enabled=true"},
		{"postgresql.bundled.enabled=true"},
		{"console.tls.secretName=console-tls", "console.service.type=LoadBalancer"},
		{"rbac.bindings.admins[0].kind=Group", "rbac.bindings.admins[0].name=platform-admins",
			"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=ci", "rbac.bindings.viewers[0].namespace=ci"},
	} {
		t.Run(fmt.Sprintf("%v", set), func(t *testing.T) {
			objs := render(t, set...)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if o.GetAPIVersion() == "cert-manager.io/v1" {
					if o.GetKind() != "Certificate" && o.GetKind() != "Issuer" {
						t.Errorf("unexpected cert-manager kind %s", o.GetKind())
					}
					if _, ok, _ := unstructured.NestedMap(o.Object, "spec"); !ok {
						t.Errorf("%s %s has no spec", o.GetKind(), o.GetName())
					}
					continue
				}
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
					client.FieldOwner("chart-test"), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("server-side dry-run of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
			// Two Deployments: the manager's and the console's.
			if kinds["CustomResourceDefinition"] != 7 || kinds["Deployment"] != 2 || kinds["MutatingWebhookConfiguration"] != 1 || kinds["ValidatingWebhookConfiguration"] != 1 {
				t.Errorf("unexpected set of objects: %v", kinds)
			}
		})
	}
}

// The dry-run is a real check: the apiserver refuses what is invalid.
func TestDryRunRefusesInvalidObjects(t *testing.T) {
	needsHelm(t)
	c := controlPlane(t).Client
	dep := find(t, render(t, "manager.podLabels.team=not a label value"), "Deployment", "claiim-manager")
	err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(dep),
		client.FieldOwner("chart-test"), client.ForceOwnership, client.DryRunAll)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("server-side dry-run of a Deployment with an invalid label: got %v, want Invalid", err)
	}
}

// forbiddenLog records every distinct request the apiserver refused with 403.
type forbiddenLog struct {
	mu   sync.Mutex
	reqs []string
}

func (f *forbiddenLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			req := r.Method + " " + r.URL.Path
			f.mu.Lock()
			if !slices.Contains(f.reqs, req) {
				f.reqs = append(f.reqs, req)
			}
			f.mu.Unlock()
		}
		return resp, err
	})
}

func (f *forbiddenLog) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The manager runs under exactly the RBAC the chart grants: its
// ServiceAccount's username, no other permission, leader election on, the
// gate managed. The seed's samples reconcile, the agent's token is issued,
// the gate's objects exist, and no request is refused.
func TestManagerRunsUnderChartRBAC(t *testing.T) {
	needsHelm(t)
	env := controlPlane(t)
	admin := env.Client
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(60 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	objs := render(t)

	// The chart's ServiceAccount and RBAC, created for real.
	for _, o := range ofKind(objs, "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding") {
		o := o.DeepCopy()
		if err := admin.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}

	// How the chart runs the manager: its identity and its gate flags.
	dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager"))
	m := dep.Spec.Template.Spec.Containers[0]
	username := ""
	for _, e := range m.Env {
		if e.Name == "CLAIIM_MANAGER_USERNAME" {
			username = e.Value
		}
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	g.Expect(username).To(Equal("system:serviceaccount:" + releaseNS + ":" + sa))
	flags := map[string]string{}
	for _, a := range m.Args[1:] {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[k] = v
	}
	g.Expect(flags).To(HaveKey("leader-elect"))
	g.Expect(flags).To(HaveKey("manage-gate"))
	replicas, err := strconv.Atoi(flags["gate-replicas"])
	g.Expect(err).NotTo(HaveOccurred())
	port, err := strconv.Atoi(flags["gate-port"])
	g.Expect(err).NotTo(HaveOccurred())
	gate := controllers.GateConfig{Namespace: releaseNS, Image: flags["gate-image"], Replicas: int32(replicas), Port: int32(port),
		DatabaseSecret: flags["gate-database-secret"], TLS: flags["gate-tls"] == "true"}
	g.Expect(gate.TLS).To(BeTrue(), "the chart's default gate serves TLS")

	// A real user with the ServiceAccount's username and groups; every 403
	// it gets is recorded.
	user, err := env.AddUser(testenv.User{Name: username, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS}})
	g.Expect(err).NotTo(HaveOccurred())
	forbidden := &forbiddenLog{}
	cfg := rest.CopyConfig(user)
	cfg.Wrap(forbidden.wrap)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        testenv.Scheme(),
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "claiim-manager.claiim.io",
		LeaderElectionNamespace:       releaseNS,
		LeaderElectionReleaseOnCancel: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(controllers.Setup(ctx, mgr, controllers.Options{GateURL: flags["gate-url"], Gate: &gate})).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the manager stopped with: %v", err)
		}
	}()
	select {
	case <-mgr.Elected():
	case err := <-done:
		t.Fatalf("the manager stopped before it was elected: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the manager was not elected leader; refused requests: %v", forbidden.list())
	}

	// The seed's samples, created by the envtest admin (no webhooks here).
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "claiim_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).To(HaveLen(5))
	var pimName string
	for _, f := range files {
		b, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed(), f)
		g.Expect(admin.Create(ctx, u)).To(Succeed(), f)
		if u.GetKind() == "PIMRequest" {
			pimName = u.GetName()
		}
	}

	ready := func(g Gomega, conds []metav1.Condition, what string) {
		c := meta.FindStatusCondition(conds, claiimv1.ConditionReady)
		g.Expect(c).NotTo(BeNil(), "%s has no Ready condition", what)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", what, c.Message)
	}
	g.Eventually(func(g Gomega) {
		org, skill, pol := &claiimv1.AIOrg{}, &claiimv1.Skill{}, &claiimv1.Policy{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: "engineering"}, org)).To(Succeed())
		ready(g, org.Status.Conditions, "AIOrg engineering")
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: "deploy-bot"}, skill)).To(Succeed())
		ready(g, skill.Status.Conditions, "Skill deploy-bot")
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: "no-production-deploys"}, pol)).To(Succeed())
		ready(g, pol.Status.Conditions, "Policy no-production-deploys")

		// The agent waits for its anchor's acceptance (that comes with the
		// PIM webhooks), but its token is issued already.
		a := &claiimv1.Agent{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "prod-deploy-bot"}, a)).To(Succeed())
		g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive))
		g.Expect(a.Status.SkillVersionID).To(HavePrefix("deploy-bot-v1-"))
		tok := meta.FindStatusCondition(a.Status.Conditions, claiimv1.ConditionTokenIssued)
		g.Expect(tok).NotTo(BeNil())
		g.Expect(tok.Status).To(Equal(metav1.ConditionTrue), tok.Message)
		sec := &corev1.Secret{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
		g.Expect(sec.Data).To(HaveKey(claiimv1.SecretKeyAgentToken))
		g.Expect(string(sec.Data[claiimv1.SecretKeyGateURL])).To(Equal(flags["gate-url"]))
		// The gate's certificate, issued under the chart's RBAC, and its CA
		// handed to the agent.
		g.Expect(string(sec.Data[claiimv1.SecretKeyGateCA])).To(ContainSubstring("BEGIN CERTIFICATE"))
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: controllers.GateTLSSecret}, &corev1.Secret{})).To(Succeed())

		p := &claiimv1.PIMRequest{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: pimName}, p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMPending))

		// The gate, created and kept by the manager.
		for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{},
			&networkingv1.NetworkPolicy{}} {
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: controllers.GateName}, o)).To(Succeed(), "%T", o)
		}
		for _, o := range []client.Object{&rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}} {
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: controllers.GateName}, o)).To(Succeed(), "%T", o)
		}
		d := &appsv1.Deployment{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: controllers.GateName}, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(gate.Replicas)))
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(gate.Image))

		// The manager's events reach the apiserver too.
		evs := &eventsv1.EventList{}
		g.Expect(admin.List(ctx, evs, client.InNamespace("default"))).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(And(
			HaveField("Regarding.Kind", "Agent"), HaveField("Regarding.Name", "prod-deploy-bot"),
			HaveField("ReportingController", Not(BeEmpty())))))
	}).Should(Succeed(), func() string { return fmt.Sprintf("refused requests: %v", forbidden.list()) })

	g.Expect(forbidden.list()).To(BeEmpty(), "the chart's RBAC does not cover these requests of the manager")
}
