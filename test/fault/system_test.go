// Package fault breaks the real parts under load and checks that CLAIIM
// stays fail-closed: PostgreSQL killed, hung and restarted, the
// kube-apiserver stopped, the gate terminated and killed. Everything is a
// real process: envtest's kube-apiserver and etcd, a throwaway PostgreSQL,
// the production claiim binary running the gate, the manager's reconcilers
// (in-process, for the agents' tokens), and the Go client as the load.
//
// TestFaults runs each fault once (in make test); TestSoak (SOAK=1, make
// soak) cycles through them for SOAK_DURATION at SOAK_RATE.
package fault

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The gate's identity, as in a cluster: its ServiceAccount with the
// claiim-gate ClusterRole (config/rbac/gate_role.yaml).
const gateUser = "system:serviceaccount:claiim-system:claiim-gate"

// agent is one seeded agent and the credentials its token Secret holds.
type agent struct {
	label       string // "A", "B" or "C" in the records
	name, ns    string
	token, svID string
}

// system is everything a fault breaks, running.
type system struct {
	ctx        context.Context
	env        *testenv.Env
	claiim     string        // the production binary
	dir        string        // kubeconfig and logs
	kubeconfig string        // the gate's
	dbURL      string        // Chron, as a superuser
	staleAfter time.Duration // the gate's --stale-after

	endpoint atomic.Pointer[string] // the gate URL the load sends to, like a Service
	gate     *gateProc              // the gate currently serving
	gates    int                    // gate processes started, for replica names
	procs    []*gateProc            // every gate process, to stop them all
	procsMu  sync.Mutex

	rows []row // the table, one row per fault exercised

	a, b      agent
	c         agent // acts through the apiserver's outage, suspended after it
	pg        *pgProcs
	apiserver *apiserverProc
}

// newSystem starts and seeds the whole system; it stops with the test.
func newSystem(t *testing.T) *system {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kube-apiserver, PostgreSQL and the gate binary")
	}
	if os.Getenv(pgtest.EnvURL) != "" {
		t.Skipf("the fault suite kills and stops its own PostgreSQL; unset %s", pgtest.EnvURL)
	}
	start := time.Now()
	s := &system{dir: t.TempDir(), staleAfter: 5 * time.Second}
	built := make(chan error, 1)
	s.claiim = filepath.Join(s.dir, "claiim")
	go func() { built <- buildClaiim(s.claiim) }()

	// Registered before the environment, so it runs after the environment
	// stopped: a kube-apiserver this test restarted is its own child.
	t.Cleanup(func() { s.apiserver.stop() })
	mlog, err := os.Create(filepath.Join(s.dir, "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mlog.Close() })
	s.env = testenv.Setup(t, testenv.Options{
		Log:   mlog,
		Chron: true,
		RBAC:  []string{"config/rbac/gate_role.yaml"},
		// The manager's namespace: its attestation key and the public keys the gates read.
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}},
		Manager: &testenv.Manager{Cache: controllers.CacheOptions(), Setup: func(ctx context.Context, mgr ctrl.Manager, _ *testenv.Env) error {
			// No Chron log: the manager is not under test here (test/ha is
			// its suite), so a database fault must not stop it.
			return controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.fault.test/v"})
		}},
	})
	s.ctx = s.env.Context()
	s.dbURL = s.env.Chron.Config().ConnString()
	if s.apiserver, err = findAPIServer(); err != nil {
		t.Fatal(err)
	}
	if s.pg, err = findPostgres(s.ctx, s.env); err != nil {
		t.Fatal(err)
	}
	s.writeGateKubeconfig(t)
	s.seed(t)
	seeded := time.Since(start)
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	t.Logf("environment up and seeded in %s, claiim built in %s", seeded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		s.stopGates() // before the environment stops
		if t.Failed() {
			shown := map[string]bool{}
			for _, g := range s.gateProcs() {
				if !shown[g.log] {
					shown[g.log] = true
					t.Logf("gate %s's log ends with:\n%s", g.replica, g.tail())
				}
			}
		}
	})
	s.gate = s.startGate(t, s.nextReplica(), 0)
	s.route(s.gate)
	return s
}

// buildClaiim builds the production binary once, with the test's own
// build settings so that it reuses the packages the test already compiled.
func buildClaiim(out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/claiim")
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/claiim: %w\n%s", err, b)
	}
	return nil
}

// gateHasFlag reports whether `claiim gate -h` lists the flag.
func (s *system) writeGateKubeconfig(t testing.TB) {
	u, err := s.env.Environment.AddUser(envtest.User{Name: gateUser, Groups: []string{"system:serviceaccounts", "system:authenticated"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.Bind(s.ctx, s.env.Client, gateUser, "claiim-gate"); err != nil {
		t.Fatal(err)
	}
	// Chron's keys and stream Leases, as the manager provides them in a
	// cluster (the suite's manager runs without Chron): the gate reads its
	// key Secret and holds Leases in claiim-system.
	const ns = "claiim-system"
	c := s.env.Client
	for _, o := range []client.Object{ // the namespace is made with the environment
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gate-chron"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{chronlease.GateKeysSecret}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gate-chron"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "gate-chron"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: gateUser}}},
	} {
		if err := c.Create(s.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := chronlease.EnsureKeySet(s.ctx, c, ns, chronlease.GateKeysSecret, chron.ScopeGate, false); err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	s.kubeconfig = filepath.Join(s.dir, "kubeconfig-gate")
	if err := os.WriteFile(s.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
}

// seed is the onboarding's world: an org, the Deploy Bot skill, the
// no-production policy, and accepted agents: A (the load), B (suspended
// before each fault) and C (for the apiserver's outage).
func (s *system) seed(t testing.TB) {
	c := s.env.Client
	objs := []client.Object{
		&claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}, Spec: claiimv1.AIOrgSpec{DisplayName: "Engineering"}},
		&claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "deploy-bot"}, Spec: claiimv1.SkillSpec{
			Org: "engineering", DisplayName: "Deploy Bot",
			Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "deploy-bot@yourcompany.com",
				AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}}},
		}},
		&claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-production-deploys"}, Spec: claiimv1.PolicySpec{
			Org: "engineering", Rules: []claiimv1.PolicyRule{{Name: "no-prod", Actions: []claiimv1.ActionPattern{"deploy:production"}, Effect: claiimv1.PolicyEffectDeny}},
		}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "agents"}},
	}
	for _, o := range objs {
		if err := c.Create(s.ctx, o); err != nil {
			t.Fatalf("seeding %T %s: %v", o, o.GetName(), err)
		}
	}
	s.a = s.newAgent(t, "A", "deploy-bot-a")
	s.b = s.newAgent(t, "B", "deploy-bot-b")
	s.c = s.newAgent(t, "C", "deploy-bot-c")
}

func (s *system) newAgent(t testing.TB, label, name string) agent {
	const anchor = "admin@claiim.io"
	obj := &claiimv1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: "agents", Name: name, Annotations: map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}},
		Spec: claiimv1.AgentSpec{Org: "engineering", DisplayName: "Deploy Bot " + label, AccountabilityAnchor: anchor,
			SkillRef: claiimv1.SkillRef{Name: "deploy-bot", Version: 1}},
	}
	if err := s.env.Client.Create(s.ctx, obj); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	key := client.ObjectKey{Namespace: "agents", Name: controllers.TokenSecretName(name)}
	eventually(t, 30*time.Second, "agent "+name+"'s token Secret", func() error {
		if err := s.env.Client.Get(s.ctx, key, sec); err != nil {
			return err
		}
		if len(sec.Data[claiimv1.SecretKeyAgentToken]) == 0 || len(sec.Data[claiimv1.SecretKeySkillVersionID]) == 0 {
			return fmt.Errorf("the Secret has no token or skill version yet")
		}
		return nil
	})
	return agent{label: label, name: name, ns: "agents",
		token: string(sec.Data[claiimv1.SecretKeyAgentToken]), svID: string(sec.Data[claiimv1.SecretKeySkillVersionID])}
}

// setLifecycle asks for a lifecycle, as `kubectl patch` would.
func (s *system) setLifecycle(t testing.TB, a agent, l claiimv1.AgentLifecycle) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := &claiimv1.Agent{}
		if err := s.env.Client.Get(s.ctx, client.ObjectKey{Namespace: a.ns, Name: a.name}, obj); err != nil {
			return err
		}
		obj.Spec.Lifecycle = l
		return s.env.Client.Update(s.ctx, obj)
	})
	if err != nil {
		t.Fatalf("setting agent %s to %s: %v", a.name, l, err)
	}
}

// suspendB makes B's suspension fresh before a fault: B resumed and
// allowed, then suspended and denied by the gate serving now. It returns
// when the gate denied B.
func (s *system) suspendB(t testing.TB) time.Time {
	s.resume(t, s.b)
	s.setLifecycle(t, s.b, claiimv1.LifecycleSuspended)
	eventually(t, 30*time.Second, "the gate denies agent B once suspended", func() error { return s.expect(s.b, false) })
	return time.Now()
}

// resume makes the agent Active and waits until the manager has recorded
// it and the gate allows it; it logs how long each took when slow (after
// an apiserver outage both wait for their watches to retry).
func (s *system) resume(t testing.TB, a agent) {
	t0 := time.Now()
	s.setLifecycle(t, a, claiimv1.LifecycleActive)
	eventually(t, time.Minute, "the manager records agent "+a.label+" Active", func() error {
		obj := &claiimv1.Agent{}
		if err := s.env.Client.Get(s.ctx, client.ObjectKey{Namespace: a.ns, Name: a.name}, obj); err != nil {
			return err
		}
		if obj.Status.Phase != claiimv1.AgentActive || obj.Status.ObservedGeneration != obj.Generation {
			return fmt.Errorf("status: %s for generation %d of %d", obj.Status.Phase, obj.Status.ObservedGeneration, obj.Generation)
		}
		return nil
	})
	recorded := time.Since(t0)
	eventually(t, time.Minute, "the gate allows agent "+a.label+" once resumed", func() error { return s.expect(a, true) })
	if took := time.Since(t0); took > time.Second {
		t.Logf("agent %s resumed: the manager recorded it in %s, the gate allowed it after %s",
			a.label, recorded.Round(time.Millisecond), took.Round(time.Millisecond))
	}
}

// expect asks once as the agent and says whether the answer was the one
// wanted (ALLOW or a DENY from the gate).
func (s *system) expect(a agent, allow bool) error {
	c := s.call(a, httpClient(5*time.Second))
	switch {
	case allow && c.outcome != outcomeAllow:
		return fmt.Errorf("agent %s: %s %s %s", a.label, c.outcome, c.reason, c.err)
	case !allow && c.outcome != outcomeDeny:
		return fmt.Errorf("agent %s: %s %s %s", a.label, c.outcome, c.reason, c.err)
	}
	return nil
}

// eventually polls f until it returns nil, or fails the test after limit.
func eventually(t testing.TB, limit time.Duration, what string, f func() error) {
	t.Helper()
	gomega.NewWithT(t).Eventually(f).WithTimeout(limit).WithPolling(50*time.Millisecond).Should(gomega.Succeed(), what)
}

// httpClient is the load's transport: the Go client's own settings with
// the timeout past which a call counts as a hang.
func httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
