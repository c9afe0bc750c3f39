package cli

// `claiim console`: the web console and Chron's read API. It acts for
// people with their own bearer tokens (internal/console); its own identity
// only reviews tokens, lists AIOrgs and reads Chron's public checkpoints.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/internal/console"
)

type consoleOptions struct {
	listen, dbURL, certDir, gateURL, chronNS string
	audiences                                []string
	idle, maxAge                             time.Duration
	zap                                      zap.Options
}

// parseConsoleFlags parses args, writing help and flag errors to out.
func parseConsoleFlags(args []string, out io.Writer) (*consoleOptions, error) {
	o := &consoleOptions{}
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", ":3001", "address of the console: pages, /login, /api/v1/chron/..., /healthz, /readyz")
	// No default value: -h would print $DATABASE_URL, password and all.
	fs.StringVar(&o.dbURL, "database-url", "", "PostgreSQL URL of Chron as its READER role (SELECT only: the chart's <release>-chron-reader Secret), "+
		"never the owner's or a writer's (default $DATABASE_URL)")
	fs.StringVar(&o.certDir, "tls-cert-dir", "", "directory with tls.crt and tls.key: serve HTTPS, reloading the pair when it changes; empty serves plain HTTP "+
		"(loopback, or behind a port-forward or a TLS-terminating proxy)")
	fs.StringVar(&o.gateURL, "gate-url", "", "where agents reach the gate, shown on an agent's page")
	audiences := fs.String("audiences", "", "comma-separated audiences a person's token must be meant for; empty accepts the apiserver's own")
	fs.DurationVar(&o.idle, "idle-timeout", 30*time.Minute, "end a session unused this long")
	fs.DurationVar(&o.maxAge, "session-max-age", 8*time.Hour, "end any session this old: a revoked token stops working here within it")
	fs.StringVar(&o.chronNS, "chron-namespace", podNamespace(), "the manager's namespace: Chron's stream Leases and public keys (ConfigMap "+chronlease.PublicConfigMap+
		"), which verify checks the log against; empty verifies the database alone")
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.dbURL == "" {
		o.dbURL = os.Getenv("DATABASE_URL")
	}
	if o.dbURL == "" {
		return nil, errors.New("no Chron database: set DATABASE_URL or --database-url to the Chron READER role's URL " +
			"(the chart's <release>-chron-reader Secret; `claiim chron migrate` creates the role)")
	}
	if o.idle <= 0 || o.maxAge <= 0 {
		return nil, errors.New("--idle-timeout and --session-max-age must be positive")
	}
	for _, a := range strings.Split(*audiences, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.audiences = append(o.audiences, a)
		}
	}
	return o, nil
}

// RunConsole runs the console until SIGTERM.
func RunConsole(args []string) error {
	o, err := parseConsoleFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (set KUBECONFIG or run in a pod): %w", err)
	}
	// Bound before anything starts: a taken port is an error at once.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return serveConsole(ctrl.SetupSignalHandler(), cfg, o, ln, ctrl.Log.WithName("console"))
}

// serveConsole serves on ln, as cfg's identity, until ctx ends, then
// shuts down gracefully.
func serveConsole(ctx context.Context, cfg *rest.Config, o *consoleOptions, ln net.Listener, log logr.Logger) error {
	defer ln.Close()
	// No statement timeout: a verify reads the whole log; each page's query
	// has its own deadline in the API.
	pool, err := chron.OpenPool(ctx, o.dbURL, chron.PoolOptions{Application: "claiim-console", IdleInTxTimeout: chron.ComponentIdleInTxTimeout})
	if err != nil {
		return fmt.Errorf("Chron database URL: %w", err)
	}
	defer pool.Close()
	scheme := newScheme()
	own, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	auth := &console.Auth{Config: rest.AnonymousClientConfig(cfg), Reviews: cs.AuthenticationV1().TokenReviews(), Scheme: scheme,
		Orgs: own, Audiences: o.audiences, IdleTimeout: o.idle, MaxAge: o.maxAge}
	api := &console.ChronAPI{Pool: pool, Log: log.WithName("chron")}
	if o.chronNS != "" {
		// As `claiim chron verify` reads them, without the key Secrets.
		api.VerifyOptions = chronlease.Source{Reader: own, LeaseNamespaces: []string{o.chronNS}, PublicNamespace: o.chronNS}.Options
	}
	c := &console.Console{Auth: auth, Chron: api, GateURL: o.gateURL, Log: log}
	ready := &consoleReadiness{pool: pool, own: own, need: chron.RequiredVersion(), log: log}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", ready.serve)
	mux.Handle("/", c.Handler())
	// Requests end with this context: tails and exports stream for minutes,
	// so shutting down ends them after a grace period.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, BaseContext: func(net.Listener) context.Context { return base }}
	g, gctx := errgroup.WithContext(ctx)
	if o.certDir != "" {
		w, err := servingTLS(srv, o.certDir, "the console's TLS certificate in %s (console.tls.secretName)")
		if err != nil {
			return err
		}
		g.Go(func() error { return w.Start(gctx) })
	}
	db := pool.Config().ConnConfig
	log.Info("console listening", "address", ln.Addr().String(), "tls", srv.TLSConfig != nil, "apiserver", cfg.Host,
		"database", fmt.Sprintf("%s@%s:%d/%s", db.User, db.Host, db.Port, db.Database), "gateURL", o.gateURL)
	g.Go(func() error {
		if err := serveGate(srv, ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("console on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: finishing requests")
		grace := time.AfterFunc(5*time.Second, endRequests)
		defer grace.Stop()
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// consoleReadiness is ready when Chron answers the reader role at the
// schema this binary reads and the apiserver answers the console's own
// identity (it lists AIOrgs to know the org tree).
type consoleReadiness struct {
	pool *pgxpool.Pool
	own  client.Reader
	need int
	log  logr.Logger

	mu          sync.Mutex
	last        string // the last answer, logged when it changes
	checkedRole bool
}

func (r *consoleReadiness) serve(w http.ResponseWriter, req *http.Request) {
	what, err := r.check(req.Context())
	r.mu.Lock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != r.last {
		if err != nil {
			r.log.Error(err, "Not ready")
		} else {
			r.log.Info("Ready")
		}
		r.last = msg
	}
	r.mu.Unlock()
	if err != nil {
		// The detail is in the log: this endpoint answers anyone.
		http.Error(w, "not ready: "+what, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (r *consoleReadiness) check(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chron.SchemaVersion(ctx, r.pool)
	if err != nil {
		return "Chron", fmt.Errorf("Chron's database does not answer the console (is DATABASE_URL the reader role's, and does the role exist? "+
			"`claiim chron migrate` creates it): %w", err)
	}
	if v < r.need {
		return "Chron", fmt.Errorf("Chron's schema is at version %d, this console reads version %d: run `claiim chron migrate`", v, r.need)
	}
	r.warnIfWriter(ctx)
	if err := r.own.List(ctx, &claiimv1.AIOrgList{}, client.Limit(1)); err != nil {
		return "apiserver", fmt.Errorf("listing AIOrgs as the console's own identity (ClusterRole claiim-console): %w", err)
	}
	return "", nil
}

// warnIfWriter says, once, when the console's database role may write
// Chron: it reads only, and a role that may write is one to take back.
func (r *consoleReadiness) warnIfWriter(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checkedRole {
		return
	}
	var write bool
	if err := r.pool.QueryRow(ctx, "SELECT has_table_privilege('chron_records', 'INSERT')").Scan(&write); err != nil {
		return
	}
	r.checkedRole = true
	if write {
		r.log.Info("WARNING: the console's database role may write Chron; give it the reader role's URL (the chart's <release>-chron-reader Secret)",
			"role", r.pool.Config().ConnConfig.User)
	}
}
