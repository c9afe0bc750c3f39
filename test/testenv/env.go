package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// Options say what a test environment runs. The zero value is a bare
// control plane (kube-apiserver and etcd, RBAC on, the CRDs installed).
type Options struct {
	// RBAC lists YAML files, relative to the repository root, whose
	// objects are created first (e.g. "config/rbac/role.yaml").
	RBAC []string
	// Objects are created next, as the admin: namespaces, extra roles.
	Objects []client.Object
	// Users get their own credentials and ClusterRoleBindings.
	Users []User
	// Tokens also gives each of Users a bearer token (Env.Token), for
	// what logs people in with a token rather than a certificate.
	Tokens bool
	// Chron starts a throwaway PostgreSQL with a migrated Chron database.
	Chron bool
	// Webhooks installs config/webhook's configurations, pointed at the
	// manager's webhook server; it needs a Manager.
	Webhooks bool
	// Manager, when set, runs a manager as the binary does.
	Manager *Manager
	// Log, when set, receives controller-runtime's log.
	Log io.Writer
}

// User is a person or a ServiceAccount with its own client certificate.
type User struct {
	Name string
	// Groups default to system:authenticated.
	Groups []string
	// ClusterRoles are bound to the user.
	ClusterRoles []string
}

// Manager is how an environment runs the manager.
type Manager struct {
	// User the manager runs as, one of Options.Users; empty means the
	// admin (system:masters).
	User  string
	Cache cache.Options
	// Setup registers what the manager runs (controllers.Setup,
	// admission.Setup), before it starts. ctx ends when the manager stops.
	Setup func(ctx context.Context, mgr ctrl.Manager, env *Env) error
}

// Env is a running test environment. Stop stops all of it.
type Env struct {
	// Config and Client act as the admin (system:masters); Client reads
	// straight from the apiserver.
	Config *rest.Config
	Client client.Client
	// Chron and Postgres are set with Options.Chron: a superuser pool on
	// the migrated database, and its server (to stop and start it).
	Chron    *pgxpool.Pool
	Postgres *pgtest.Server
	// Manager is set with Options.Manager; it is running.
	Manager ctrl.Manager
	// Environment is envtest's, for anything this helper does not cover.
	Environment *envtest.Environment

	ctx      context.Context
	cancel   context.CancelFunc
	tokens   map[string]string
	users    map[string]*rest.Config
	clients  map[string]client.Client
	mu       sync.Mutex
	stops    []func() error
	stopOnce sync.Once
	stopErr  error
}

// TB is what Setup needs of a test; *testing.T and Ginkgo's GinkgoT()
// both have it (in Ginkgo, Cleanup is DeferCleanup).
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Setup launches an environment for a test or a suite (call it from
// BeforeSuite with GinkgoT()) and stops it when that ends.
func Setup(tb TB, opts Options) *Env {
	tb.Helper()
	env, err := Launch(opts)
	if err != nil {
		tb.Fatalf("starting the test environment: %v", err)
	}
	tb.Cleanup(func() {
		if err := env.Stop(); err != nil {
			tb.Errorf("stopping the test environment: %v", err)
		}
	})
	return env
}

// Launch starts an environment; the caller stops it (for one shared by a
// package, stopped in TestMain). On error nothing is left running.
func Launch(opts Options) (_ *Env, err error) {
	if opts.Webhooks && opts.Manager == nil {
		return nil, errors.New("testenv: Webhooks needs a Manager to serve them")
	}
	if opts.Log != nil {
		logf.SetLogger(zap.New(zap.WriteTo(opts.Log), zap.UseDevMode(true)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{ctx: ctx, cancel: cancel, users: map[string]*rest.Config{}, clients: map[string]client.Client{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Stop())
		}
	}()

	if opts.Chron {
		if e.Postgres, e.Chron, err = startChron(ctx); err != nil {
			return nil, err
		}
		e.OnStop(func() error { e.Postgres.Stop(); return nil })
		e.OnStop(func() error { e.Chron.Close(); return nil })
	}

	e.Environment = New()
	if opts.Webhooks {
		e.Environment.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(RepoRoot(), "config", "webhook")}}
	}
	if opts.Tokens {
		dir, err := os.MkdirTemp("", "claiim-tokens-")
		if err != nil {
			return nil, err
		}
		e.OnStop(func() error { return os.RemoveAll(dir) })
		if e.tokens, err = TokenFile(e.Environment, dir, opts.Users); err != nil {
			return nil, err
		}
	}
	if e.Config, err = Start(e.Environment); err != nil {
		return nil, err
	}
	e.OnStop(e.Environment.Stop)
	if e.Client, err = client.New(e.Config, client.Options{Scheme: Scheme()}); err != nil {
		return nil, err
	}

	for _, path := range opts.RBAC {
		if err := ApplyFile(ctx, e.Client, filepath.Join(RepoRoot(), path)); err != nil {
			return nil, err
		}
	}
	for _, o := range opts.Objects {
		if err := e.Client.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	for _, u := range opts.Users {
		if _, err := e.AddUser(u); err != nil {
			return nil, err
		}
	}
	if opts.Manager != nil {
		if err := e.startManager(opts.Manager, opts.Webhooks); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Context ends when the environment stops.
func (e *Env) Context() context.Context { return e.ctx }

// AddUser gives u its own credentials, binds its ClusterRoles, and
// returns its config. Users get the admin config's client settings (no
// client-side throttling): only the identity differs.
func (e *Env) AddUser(u User) (*rest.Config, error) {
	groups := u.Groups
	if len(groups) == 0 {
		groups = []string{"system:authenticated"}
	}
	au, err := e.Environment.AddUser(envtest.User{Name: u.Name, Groups: groups}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", u.Name, err)
	}
	if err := Bind(e.ctx, e.Client, u.Name, u.ClusterRoles...); err != nil {
		return nil, err
	}
	c, err := client.New(au.Config(), client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[u.Name], e.clients[u.Name] = au.Config(), c
	return au.Config(), nil
}

// As returns a client acting as the named user (from Options.Users or
// AddUser). An unknown name is a mistake in the test: it panics.
func (e *Env) As(user string) client.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.clients[user]
	if !ok {
		panic(fmt.Sprintf("testenv: no user %q; list it in Options.Users", user))
	}
	return c
}

// ConfigOf is the named user's config (a copy), for clients other than
// As's; an unknown name panics, as in As.
func (e *Env) ConfigOf(user string) *rest.Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg, ok := e.users[user]
	if !ok {
		panic(fmt.Sprintf("testenv: no user %q; list it in Options.Users", user))
	}
	return rest.CopyConfig(cfg)
}

// Token is the named user's bearer token (Options.Tokens); a user
// without one is a mistake in the test: it panics.
func (e *Env) Token(user string) string {
	t, ok := e.tokens[user]
	if !ok {
		panic(fmt.Sprintf("testenv: user %q has no token; set Options.Tokens and list it in Options.Users", user))
	}
	return t
}

// OnStop runs f when the environment stops, before whatever was started
// earlier is stopped (the manager stops first, PostgreSQL last).
func (e *Env) OnStop(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops = append(e.stops, f)
}

// Stop ends the environment's context, then stops everything in reverse
// order of start. It is safe to call more than once.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.cancel()
		e.mu.Lock()
		stops := e.stops
		e.mu.Unlock()
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

func (e *Env) startManager(m *Manager, webhooks bool) error {
	cfg := e.Config
	if m.User != "" {
		e.mu.Lock()
		c, ok := e.users[m.User]
		e.mu.Unlock()
		if !ok {
			return fmt.Errorf("testenv: the manager's user %q is not in Options.Users", m.User)
		}
		cfg = c
	}
	// A package may run a second manager (a test with other options) in
	// the same process: controller names are unique per process otherwise.
	skip := true
	opts := ctrl.Options{Scheme: Scheme(), Cache: m.Cache, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}}
	wio := &e.Environment.WebhookInstallOptions
	if webhooks {
		opts.WebhookServer = webhook.NewServer(webhook.Options{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir})
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	if m.Setup != nil {
		if err := m.Setup(ctx, mgr, e); err != nil {
			cancel()
			return fmt.Errorf("setting up the manager: %w", err)
		}
	}
	stopped := make(chan struct{})
	var startErr error
	go func() {
		defer close(stopped)
		startErr = mgr.Start(ctx)
	}()
	e.Manager = mgr
	e.OnStop(func() error {
		cancel()
		<-stopped
		if startErr != nil {
			return fmt.Errorf("the manager stopped with: %w", startErr)
		}
		return nil
	})
	if !webhooks {
		return nil
	}
	return waitForWebhooks(net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)), stopped)
}

// waitForWebhooks returns once the manager's webhook server accepts TLS
// connections: until then every admission request would fail.
func waitForWebhooks(addr string, stopped <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a readiness probe of a local test server
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager's webhook server at %s did not come up: %w", addr, err)
		}
		select {
		case <-stopped:
			return errors.New("the manager stopped before serving webhooks")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
