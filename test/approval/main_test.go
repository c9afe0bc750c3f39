// Package approval tests RequireApproval end to end with real parts:
// envtest's apiserver with RBAC, the manager (reconcilers, admission
// webhooks, the approval materializer) as its own identity, a real
// PostgreSQL for Chron, and two gate replicas over HTTP, each with its
// own informers and Chron stream. People approve as themselves.
package approval

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/controllers/admission"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/testenv"
)

const (
	adminUser   = "admin@claiim.io" // the agent's accountability anchor
	peerUser    = "peer@claiim.io"
	opsUser     = "ops@claiim.io"
	nobodyUser  = "nobody@claiim.io" // may patch approvals, may not approve
	managerUser = "system:serviceaccount:claiim-system:claiim-manager"
	// agentSA is the agent's own ServiceAccount, given the approver role
	// here to show that RBAC alone does not let it approve its calls.
	agentSA   = "system:serviceaccount:default:deploy-bot"
	managerNS = "claiim-system"
)

var (
	env   *testenv.Env
	ctx   context.Context
	pool  *pgxpool.Pool
	gates [2]string // the two replicas' base URLs
)

func TestMain(m *testing.M) { testenv.Main(m, launch) }

func launch(m *testing.M) int {
	var err error
	sa := []string{"system:serviceaccounts", "system:authenticated"}
	env, err = testenv.Launch(testenv.Options{
		Chron:    true,
		Webhooks: true,
		RBAC:     []string{"config/rbac/role.yaml", "config/rbac/user_roles.yaml"},
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNS}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "patch-approvals"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{"claiim.io"},
				Resources: []string{"actionapprovals"}, Verbs: []string{"get", "list", "patch", "update"}}}}},
		Users: []testenv.User{
			{Name: managerUser, Groups: sa, ClusterRoles: []string{"claiim-manager"}},
			{Name: adminUser, ClusterRoles: []string{"claiim-admin", "claiim-action-approver"}},
			{Name: peerUser, ClusterRoles: []string{"claiim-admin", "claiim-approver", "claiim-action-approver"}},
			{Name: opsUser, ClusterRoles: []string{"claiim-action-approver"}},
			{Name: nobodyUser, ClusterRoles: []string{"claiim-viewer", "patch-approvals"}},
			{Name: agentSA, Groups: sa, ClusterRoles: []string{"claiim-action-approver"}},
		},
		Manager: &testenv.Manager{User: managerUser, Cache: controllers.CacheOptions(),
			Setup: func(ctx context.Context, mgr ctrl.Manager, env *testenv.Env) error {
				writer, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "manager/test"})
				if err != nil {
					return err
				}
				env.OnStop(writer.Close)
				signer, err := controllers.LoadSigner(ctx, mgr.GetAPIReader(), mgr.GetClient(), managerNS)
				if err != nil {
					return err
				}
				if err := controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.test/v", Log: writer, Signer: signer,
					Namespace: managerNS, ChronPool: env.Chron,
					ApprovalRetention: time.Second}); err != nil { // expired ones go at once (TestExpiredApprovalsAreDeleted)
					return err
				}
				return admission.Setup(mgr, admission.Options{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Client: mgr.GetClient(),
					Log: writer, ManagerUsername: managerUser, Signer: signer})
			}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, pool = env.Context(), env.Chron
	for i, stream := range []string{"gate/a", "gate/b"} {
		if gates[i], err = startGate(stream); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// startGate runs one gate replica as in production: its own informers,
// verifying admission stamps and the manager's signatures, and its own
// Chron stream.
func startGate(stream string) (string, error) {
	writer, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: stream, CommitTimeout: 2 * time.Second})
	if err != nil {
		return "", err
	}
	env.OnStop(writer.Close)
	src, err := server.NewSource(env.Config, testenv.Scheme())
	if err != nil {
		return "", err
	}
	src.KeysFrom = types.NamespacedName{Namespace: managerNS, Name: controllers.AttestationKeysConfigMap}
	go func() { _ = src.Run(ctx) }()
	srv := &server.Server{Snapshots: src, Log: writer, DB: pool, Replica: stream, Logger: logf.Log.WithName(stream), Approvals: src,
		Uses:     func(ctx context.Context, id string) (string, error) { return chron.ApprovalUse(ctx, pool, id) },
		Refusals: &server.Refusals{Log: writer, Replica: stream, Interval: time.Hour}, Limits: server.AuthLimits{PerSource: 1000, Tarpit: -1}}
	hs := httptest.NewServer(srv.Handler())
	env.OnStop(func() error { hs.Close(); return nil })
	deadline := time.Now().Add(30 * time.Second)
	for src.Ready() != nil {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("gate %s did not get ready: %w", stream, src.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return hs.URL, nil
}
