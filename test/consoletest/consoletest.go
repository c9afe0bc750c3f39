// Package consoletest runs the console against real parts for tests: an
// envtest apiserver with RBAC and a static bearer token per person, the
// manager's reconcilers and admission webhooks, PostgreSQL read as the
// Chron reader role, optionally the gate, and the console over TLS (its
// session cookie is Secure).
package consoletest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/controllers/admission"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The people and identities of the world.
const (
	Admin   = "admin@claiim.io"
	Peer    = "peer@claiim.io"        // an approver
	Auditor = "auditor@claiim.io"     // claiim-auditor
	Eng     = "eng-auditor@claiim.io" // reads engineering's Chron only
	Nobody  = "nobody@claiim.io"      // authenticated, no role
	Console = "system:serviceaccount:claiim-system:claiim-console"
	Manager = "system:serviceaccount:claiim-system:claiim-manager"
	// Namespace is the manager's.
	Namespace = "claiim-system"
)

// Options say what else runs.
type Options struct {
	// Gate runs the gate over HTTP (World.GateURL) and sets the console's
	// GateURL to it.
	Gate bool
	// History makes the manager keep every generation in Chron, as the
	// manager does in production (chron.HistoryStore).
	History bool
	// WhatIf makes admission replay recent decisions against every
	// admitted Policy, Skill or Agent change and record the what-if on the
	// PIMRequest it was made under (status.whatIf), as the manager does
	// when it may read Chron.
	WhatIf bool
	// Users are created besides the world's own people.
	Users []testenv.User
	// Objects are created besides the world's own: a suite's extra RBAC.
	Objects []client.Object
	// TailLifetime ends each console Chron tail after this long, so
	// clients reconnect within a test; zero keeps the console's default.
	TailLifetime time.Duration
	// Wrap, when set, wraps the console's handler, to watch requests.
	Wrap func(http.Handler) http.Handler
}

// World is the running set. Stop stops all of it.
type World struct {
	Env     *testenv.Env
	Ctx     context.Context
	Console *console.Console
	Server  *httptest.Server
	Reader  *pgxpool.Pool
	GateURL string
}

// Launch starts a world; on error nothing is left running.
func Launch(opts Options) (_ *World, err error) {
	sa := []string{"system:serviceaccounts", "system:serviceaccounts:" + Namespace, "system:authenticated"}
	env, err := testenv.Launch(testenv.Options{
		Chron: true, Webhooks: true, Tokens: true,
		RBAC: []string{"config/rbac/role.yaml", "config/rbac/user_roles.yaml", "config/rbac/console_role.yaml"},
		Objects: append([]client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "chron-engineering"}, Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{claiimv1.GroupVersion.Group}, Resources: []string{"aiorgs/chron"}, ResourceNames: []string{"engineering"}, Verbs: []string{"get"}}}},
		}, opts.Objects...),
		Users: append([]testenv.User{
			{Name: Manager, Groups: sa, ClusterRoles: []string{"claiim-manager"}},
			{Name: Console, Groups: sa, ClusterRoles: []string{"claiim-console"}},
			{Name: Admin, ClusterRoles: []string{"claiim-admin", "claiim-auditor"}},
			{Name: Peer, ClusterRoles: []string{"claiim-admin", "claiim-approver", "claiim-auditor"}},
			{Name: Auditor, ClusterRoles: []string{"claiim-auditor"}},
			{Name: Eng, ClusterRoles: []string{"claiim-viewer", "chron-engineering"}},
			{Name: Nobody},
		}, opts.Users...),
		Manager: &testenv.Manager{User: Manager, Cache: controllers.CacheOptions(), Setup: func(ctx context.Context, mgr ctrl.Manager, env *testenv.Env) error {
			return setupManager(ctx, mgr, env, opts)
		}},
	})
	if err != nil {
		return nil, err
	}
	w := &World{Env: env, Ctx: env.Context()}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()
	// The console reads Chron as a login of the reader role.
	login := chron.Login{Group: chron.ReaderRole, Name: "console_reader", Password: "console-reader-password"}
	if err := chron.SetupLogins(w.Ctx, env.Chron, []chron.Login{login}); err != nil {
		return nil, err
	}
	cfg := env.Chron.Config().Copy()
	cfg.ConnConfig.User, cfg.ConnConfig.Password = login.Name, login.Password
	if w.Reader, err = pgxpool.NewWithConfig(w.Ctx, cfg); err != nil {
		return nil, err
	}
	env.OnStop(func() error { w.Reader.Close(); return nil })
	if opts.Gate {
		if err := w.startGate(); err != nil {
			return nil, err
		}
	}
	// The console's own identity reviews tokens and lists orgs; nothing else.
	self := env.ConfigOf(Console)
	cs, err := kubernetes.NewForConfig(self)
	if err != nil {
		return nil, err
	}
	orgs, err := client.New(self, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return nil, err
	}
	w.Console = &console.Console{
		Auth:    &console.Auth{Config: rest.AnonymousClientConfig(env.Config), Reviews: cs.AuthenticationV1().TokenReviews(), Scheme: testenv.Scheme(), Orgs: orgs},
		Chron:   &console.ChronAPI{Pool: w.Reader, TailInterval: 50 * time.Millisecond, TailLifetime: opts.TailLifetime},
		GateURL: "http://gate.test/v",
		Log:     logr.Discard(),
	}
	if w.GateURL != "" {
		w.Console.GateURL = w.GateURL + "/v"
	}
	h := w.Console.Handler()
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	w.Server = httptest.NewTLSServer(h)
	env.OnStop(func() error { w.Server.Close(); return nil })
	return w, nil
}

// Stop stops the console, the gate, the manager, the apiserver and
// PostgreSQL.
func (w *World) Stop() error { return w.Env.Stop() }

func setupManager(ctx context.Context, mgr ctrl.Manager, env *testenv.Env, o Options) error {
	writer, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "manager/test"})
	if err != nil {
		return err
	}
	env.OnStop(writer.Close)
	signer, err := controllers.LoadSigner(ctx, mgr.GetAPIReader(), mgr.GetClient(), Namespace)
	if err != nil {
		return err
	}
	// ChronPool: the leader materializes the gates' approval requests
	// into ActionApprovals, as in production.
	opts := controllers.Options{GateURL: "http://gate.test/v", Log: writer, Signer: signer, ChronPool: env.Chron}
	if o.History {
		opts.History = chron.HistoryStore{Pool: env.Chron}
	}
	var whatIf *admission.WhatIf
	if o.WhatIf {
		whatIf = &admission.WhatIf{Chron: env.Chron}
	}
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		return err
	}
	return admission.Setup(mgr, admission.Options{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Client: mgr.GetClient(),
		Log: writer, ManagerUsername: Manager, Signer: signer, WhatIf: whatIf})
}

// startGate runs the gate over the same apiserver, verifying admission
// stamps and the manager's signatures as in production.
func (w *World) startGate() error {
	env := w.Env
	writer, err := chron.NewWriter(w.Ctx, env.Chron, chron.WriterOptions{Stream: "gate/test", CommitTimeout: time.Second})
	if err != nil {
		return err
	}
	env.OnStop(writer.Close)
	src, err := server.NewSource(env.Config, testenv.Scheme())
	if err != nil {
		return err
	}
	src.KeysFrom = types.NamespacedName{Namespace: Namespace, Name: controllers.AttestationKeysConfigMap}
	go func() { _ = src.Run(w.Ctx) }()
	srv := &server.Server{Snapshots: src, Log: writer, DB: env.Chron, Replica: "test", Logger: logr.Discard(),
		Refusals: &server.Refusals{Log: writer, Replica: "test", Interval: time.Hour}, Limits: server.AuthLimits{PerSource: 1000, Tarpit: -1}}
	hs := httptest.NewServer(srv.Handler())
	env.OnStop(func() error { hs.Close(); return nil })
	w.GateURL = hs.URL
	deadline := time.Now().Add(30 * time.Second)
	for src.Ready() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the gate did not get ready: %w", src.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Validate asks the gate (Options.Gate) to decide req as the agent whose
// token this is, as the agent's client would.
func (w *World) Validate(token string, req api.ValidateRequest) (api.ValidateResponse, error) {
	var r api.ValidateResponse
	body, err := json.Marshal(req)
	if err != nil {
		return r, err
	}
	hr, err := http.NewRequestWithContext(w.Ctx, http.MethodPost, w.GateURL+"/v/validate", bytes.NewReader(body))
	if err != nil {
		return r, err
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(api.IdempotencyKeyHeader, fmt.Sprintf("test-%d", time.Now().UnixNano()))
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("the gate's answer (HTTP %d) is not JSON: %w", resp.StatusCode, err)
	}
	return r, nil
}
