package admission_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/controllers/admission"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// Real users with their own credentials against a real apiserver with
// RBAC, the webhooks served by the manager running as its own
// ServiceAccount identity under exactly config/rbac's ClusterRole.
const (
	adminUser    = "admin@claiim.io"
	peerUser     = "peer@claiim.io"
	outsiderUser = "outsider@claiim.io"
	cfoUser      = "cfo@claiim.io"
	managerUser  = "system:serviceaccount:claiim-system:claiim-manager"
)

var (
	env                        *envtest.Environment
	ctx                        context.Context
	cancel                     context.CancelFunc
	root                       client.Client // system:masters, for setup and reading only
	admin, peer, outsider, cfo client.Client
	pg                         *pgtest.Server
	pool                       *pgxpool.Pool
	clock                      *clocktesting.FakePassiveClock
)

func TestAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx, cancel = context.WithCancel(context.Background())
	clock = clocktesting.NewFakePassiveClock(time.Now())

	var err error
	pg, pool, err = testenv.Chron(ctx)
	Expect(err).NotTo(HaveOccurred())
	writer, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "manager/test"})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(writer.Close)

	env = testenv.New()
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}}
	cfg, err := testenv.Start(env)
	Expect(err).NotTo(HaveOccurred())
	root, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	applyFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	applyFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "user_roles.yaml"))
	bind(managerUser, "claiim-manager")
	bind(adminUser, "claiim-admin")
	bind(peerUser, "claiim-admin", "claiim-approver")
	bind(outsiderUser, "claiim-admin")
	bind(cfoUser, "claiim-admin")
	// Org admins for grants: peer for engineering orgs, cfo for finance.
	bindGrantApprover(peerUser, "engineering")
	bindGrantApprover(cfoUser, "finance")

	userClient := func(name string) client.Client {
		u, err := env.AddUser(envtest.User{Name: name, Groups: []string{"system:authenticated"}}, nil)
		Expect(err).NotTo(HaveOccurred())
		c, err := client.New(u.Config(), client.Options{Scheme: testenv.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		return c
	}
	admin, peer, outsider, cfo = userClient(adminUser), userClient(peerUser), userClient(outsiderUser), userClient(cfoUser)

	mu, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:serviceaccounts", "system:authenticated"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	wio := &env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(mu.Config(), ctrl.Options{
		Scheme: testenv.Scheme(), Cache: controllers.CacheOptions(), Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir}),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.test/v", Clock: clock, Log: writer})).To(Succeed())
	Expect(admission.Setup(mgr, admission.Options{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Client: mgr.GetClient(), Log: writer,
		ManagerUsername: managerUser, Clock: clock})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	addr := net.JoinHostPort(wio.LocalServingHost, fmt.Sprint(wio.LocalServingPort))
	Eventually(func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a readiness probe of a local test server
		if err != nil {
			return err
		}
		return conn.Close()
	}).Should(Succeed())
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if pool != nil {
		pool.Close()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
	pg.Stop()
})

func applyFile(path string) {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		Expect(root.Create(ctx, u)).To(Succeed(), path)
	}
}

func bind(user string, roles ...string) {
	GinkgoHelper()
	for _, role := range roles {
		Expect(root.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: role + "-"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		})).To(Succeed())
	}
}

// bindGrantApprover lets user approve grants for orgs named with prefix.
// RBAC resourceNames need exact names, so tests name orgs exactly.
func bindGrantApprover(user, org string) {
	GinkgoHelper()
	name := "grant-approver-" + org
	Expect(root.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"claiim.io"}, Resources: []string{"aiorgs"}, Verbs: []string{"approve-grant"}, ResourceNames: []string{org}},
		{APIGroups: []string{"claiim.io"}, Resources: []string{"crossorggrants"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
	}})).To(Succeed())
	bind(user, name)
}
