package admission_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/controllers/admission"
	"github.com/claiim/claiim-operator/gate/attest"
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
	cisoUser     = "ciso@claiim.io" // a second approver, for requests that need two
	// The same people as admin and peer, spelled as another authenticator
	// may spell them, each with the verb approve (attack_test.go).
	adminSpelledUser = "Admin@claiim.io"
	peerSpelledUser  = "PEER@claiim.io"
	// pendingTTL is long: the suite's clock runs hours ahead of the
	// apiserver's creation timestamps (each spec moves it by 9h).
	pendingTTL  = 8760 * time.Hour
	managerUser = "system:serviceaccount:claiim-system:claiim-manager"
	// approverSA is the one ServiceAccount the manager accepts approvals from.
	approverSA = "system:serviceaccount:ops:approval-bot"
	botSA      = "system:serviceaccount:ops:ci-bot"
	// The webhook configurations as envtest installs them (unprefixed).
	mutatingConfig   = "mutating-webhook-configuration"
	validatingConfig = "validating-webhook-configuration"
)

var (
	ctx                        context.Context
	root                       client.Client // system:masters, for setup and reading only
	admin, peer, outsider, cfo client.Client
	ciso                       client.Client
	adminSpelled, peerSpelled  client.Client
	bot, approverBot           client.Client
	pg                         *pgtest.Server
	pool                       *pgxpool.Pool
	clock                      *clocktesting.FakePassiveClock
	signer                     *attest.Signer
	env                        *testenv.Env
)

func TestAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	clock = clocktesting.NewFakePassiveClock(time.Now())

	env = testenv.Setup(GinkgoT(), testenv.Options{
		Log:      GinkgoWriter,
		Chron:    true,
		Webhooks: true,
		RBAC:     []string{"config/rbac/role.yaml", "config/rbac/user_roles.yaml"},
		// Org admins for grants: peer for engineering orgs, cfo for finance.
		Objects: []client.Object{grantApprover("engineering"), grantApprover("finance"),
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}},
		Users: []testenv.User{
			{Name: managerUser, Groups: []string{"system:serviceaccounts", "system:authenticated"}, ClusterRoles: []string{"claiim-manager"}},
			// admin may read every org's Chron rows, so what-if warnings show them.
			{Name: adminUser, ClusterRoles: []string{"claiim-admin", "claiim-auditor"}},
			{Name: peerUser, ClusterRoles: []string{"claiim-admin", "claiim-approver", "grant-approver-engineering"}},
			{Name: outsiderUser, ClusterRoles: []string{"claiim-admin"}},
			{Name: cfoUser, ClusterRoles: []string{"claiim-admin", "grant-approver-finance"}},
			{Name: cisoUser, ClusterRoles: []string{"claiim-admin", "claiim-approver"}},
			{Name: adminSpelledUser, ClusterRoles: []string{"claiim-admin", "claiim-approver"}},
			{Name: peerSpelledUser, ClusterRoles: []string{"claiim-admin", "claiim-approver"}},
			// ServiceAccounts with the verb approve: only the one the manager
			// was told to accept may use it.
			{Name: botSA, Groups: []string{"system:serviceaccounts", "system:authenticated"}, ClusterRoles: []string{"claiim-admin", "claiim-approver"}},
			{Name: approverSA, Groups: []string{"system:serviceaccounts", "system:authenticated"}, ClusterRoles: []string{"claiim-admin", "claiim-approver"}},
		},
		Manager: &testenv.Manager{User: managerUser, Cache: controllers.CacheOptions(),
			Setup: func(ctx context.Context, mgr ctrl.Manager, env *testenv.Env) error {
				writer, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "manager/test"})
				if err != nil {
					return err
				}
				env.OnStop(writer.Close)
				// The manager's key, as it loads it in production (as its own
				// identity, under its own role).
				if signer, err = controllers.LoadSigner(ctx, mgr.GetAPIReader(), mgr.GetClient(), "claiim-system"); err != nil {
					return err
				}
				wio := env.Environment.WebhookInstallOptions
				protect := &controllers.ProtectConfig{URL: "https://" + net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)) + "/",
					Mutating: mutatingConfig, Validating: validatingConfig,
					// As the manager's certificate Rotator does: the CA back into
					// a re-created configuration.
					CABundle: func(ctx context.Context) error { return injectCA(ctx, mgr.GetClient(), wio.LocalServingCAData) }}
				if err := controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.test/v", Clock: clock, Log: writer, Signer: signer,
					Protect: protect, History: chron.HistoryStore{Pool: env.Chron}, PIMPendingTTL: pendingTTL}); err != nil {
					return err
				}
				return admission.Setup(mgr, admission.Options{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Client: mgr.GetClient(), Log: writer,
					ManagerUsername: managerUser, Clock: clock, Signer: signer, ApproverServiceAccounts: []string{approverSA},
					WhatIf: &admission.WhatIf{Chron: env.Chron}, PIMPendingTTL: pendingTTL})
			}},
	})
	ctx, root, pg, pool = env.Context(), env.Client, env.Postgres, env.Chron
	admin, peer, outsider, cfo, ciso = env.As(adminUser), env.As(peerUser), env.As(outsiderUser), env.As(cfoUser), env.As(cisoUser)
	bot, approverBot = env.As(botSA), env.As(approverSA)
	adminSpelled, peerSpelled = env.As(adminSpelledUser), env.As(peerSpelledUser)
})

// grantApprover lets its users approve grants for one org. RBAC
// resourceNames need exact names, so tests name orgs exactly.
func grantApprover(org string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "grant-approver-" + org}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"claiim.io"}, Resources: []string{"aiorgs"}, Verbs: []string{"approve-grant"}, ResourceNames: []string{org}},
		{APIGroups: []string{"claiim.io"}, Resources: []string{"crossorggrants"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
	}}
}

// injectCA sets every caBundle of the suite's webhook configurations.
func injectCA(ctx context.Context, c client.Client, ca []byte) error {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: mutatingConfig}, m); err != nil {
		return err
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := c.Update(ctx, m); err != nil {
		return err
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: validatingConfig}, v); err != nil {
		return err
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = ca
	}
	return c.Update(ctx, v)
}
