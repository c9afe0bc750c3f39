package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/gate/server"
)

// RunGate runs the gate: the decision API agents ask before every action.
func RunGate(args []string) error {
	fs := flag.NewFlagSet("gate", flag.ContinueOnError)
	listen := fs.String("listen", ":8181", "address of the gate API (/health, /ready, /v/init, /v/validate, the AuthZEN /access/v1/evaluation(s))")
	publicURL := fs.String("public-url", "", "the gate's base URL as clients reach it (e.g. https://claiim-gate.claiim-system.svc:8181), named by the AuthZEN metadata at /.well-known/authzen-configuration; empty: the address each caller used")
	metricsAddr := fs.String("metrics-bind-address", ":8182", "address of the Prometheus metrics endpoint; 0 disables it")
	var mf metricsFlags
	mf.bind(fs)
	var limits server.AuthLimits
	fs.Float64Var(&limits.PerSource, "auth-failures-per-source", 10, "failed authentications per second one client address (an IPv6 /64) may make before it is answered 429 RATE_LIMITED (burst: twice as many)")
	fs.Float64Var(&limits.PerToken, "auth-failures-per-token", 5, "failed authentications per second with one agent token id (a wrong secret) before 429 RATE_LIMITED; the agent holding the token is never limited")
	fs.Float64Var(&limits.Total, "auth-failures-total", 1000, "failed authentications per second from all clients together before 429 RATE_LIMITED")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron (default $DATABASE_URL)")
	replica := fs.String("replica", defaultReplica(), "this replica's name; its Chron stream (default $POD_NAME or the hostname)")
	// Deprecated: the gate no longer migrates (its role may not). Kept as
	// a no-op so that a gate started with a previous release's arguments
	// (the manager wrote --migrate=false into the gate's Deployment)
	// still starts during an upgrade instead of crash-looping.
	fs.Bool("migrate", false, "deprecated, no effect: `claiim chron migrate` migrates Chron")
	writeTimeout := fs.Duration("write-timeout", 2*time.Second, "longest wait for a decision's Chron row; past it the answer is DENY")
	staleAfter := fs.Duration("stale-after", 10*time.Second, "longest the gate answers from its view of the apiserver without proving it current (a live list its watches have caught up with); past it every answer is DENY NOT_READY")
	certDir := fs.String("tls-cert-dir", "", "directory with tls.crt and tls.key: serve the API over TLS, reloading the pair when it changes (the manager mounts its gate certificate here); empty serves plain HTTP, for loopback only")
	drain := fs.Duration("shutdown-drain", 5*time.Second, "on SIGTERM, how long /ready answers 503 while decisions are still answered, before the gate stops listening")
	ignoreAdmission := fs.Bool("ignore-admission", false, "use CLAIIM objects whatever their admission stamp. Only for a cluster without CLAIIM's admission webhooks (tests of the gate alone): "+
		"it lets changes made past admission count. Never set it in production (docs/security.md)")
	attKeys := fs.String("attestation-keys", podNamespace()+"/claiim-attestation-keys", "namespace/name of the ConfigMap where the manager publishes its public attestation keys; no agent or grant status counts without them")
	cs := chronStreamFlags(fs, "gate", "/etc/claiim/chron-keys", 5)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("gate")
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "migrate" {
			log.Info("--migrate is deprecated and has no effect: the gate never migrates Chron; run `claiim chron migrate`")
		}
	})
	server.TuneGC()
	if u, err := url.Parse(*publicURL); *publicURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("--public-url %q is not an http(s) base URL like https://claiim-gate.claiim-system.svc:8181", *publicURL)
	}
	if *dbURL == "" {
		return errors.New("no Chron database: set DATABASE_URL or --database-url (the gate refuses to answer without its audit log)")
	}
	ctx := ctrl.SetupSignalHandler()

	pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-gate",
		StatementTimeout: chron.ComponentStatementTimeout, IdleInTxTimeout: chron.ComponentIdleInTxTimeout})
	if err != nil {
		return fmt.Errorf("Chron database URL: %w", err)
	}
	defer pool.Close()
	// controller-runtime's registry: its metrics server serves it, and it
	// holds the Go runtime and process collectors already (registered by
	// controller-runtime when this binary starts).
	metrics := server.NewMetrics(ctrlmetrics.Registry)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (set KUBECONFIG or run in a pod): %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return err
	}
	// Chron's stream: a Lease of the gate's set, keyed and checkpointed
	// (gate/chronlease); the gate is NOT_READY while it cannot publish.
	chronMetrics := chronlease.NewMetrics(ctrlmetrics.Registry)
	keys, err := cs.gateKeys(ctx, direct, log)
	if err != nil {
		return err
	}
	holder, writerOpts, err := cs.hold(ctx, direct, chron.ScopeGate, *replica, keys, chronMetrics, log.WithName("chron"))
	if err != nil {
		return err
	}
	writerOpts.OnCommit = metrics.ObserveCommit
	writer, err := chron.NewWriter(ctx, pool, writerOpts)
	if err != nil {
		return fmt.Errorf("opening the Chron writer: %w", err)
	}
	holder.Head = writer.Head
	src, err := server.NewSource(cfg, newScheme())
	if err != nil {
		return err
	}
	if *staleAfter <= 0 {
		return errors.New("--stale-after must be positive")
	}
	src.StaleAfter = *staleAfter
	ns, name, ok := strings.Cut(*attKeys, "/")
	if !ok || ns == "" || name == "" {
		return errors.New("--attestation-keys must be <namespace>/<name>")
	}
	src.KeysFrom = types.NamespacedName{Namespace: ns, Name: name}
	if src.IgnoreAdmission = *ignoreAdmission; src.IgnoreAdmission {
		log.Info("WARNING: --ignore-admission: objects changed past the admission webhooks count; never run a production gate like this")
	}
	live := direct
	// PostgreSQL may be down, or Chron not yet migrated, at start: the
	// gate serves (DENY CHRON_UNAVAILABLE) and checks the schema in the
	// background (chronlog.go) rather than exiting into a crash-loop
	// backoff.
	chronLog := newCheckedChron("gate", pool, writer, log.WithName("chron"))
	refusals := &server.Refusals{Log: chronLog, Replica: *replica, Logger: log.WithName("refusals"), Metrics: metrics}
	srv := &server.Server{Snapshots: server.Require(src, holder.Ready), Log: chronLog, DB: pool, Replica: *replica, WriteTimeout: *writeTimeout,
		Logger: log, Metrics: metrics, Reviewer: &server.TokenReviewer{Client: live}, Limits: limits, Refusals: refusals,
		PublicURL: *publicURL, Approvals: src,
		Uses: func(ctx context.Context, id string) (string, error) { return chron.ApprovalUse(ctx, pool, id) }}
	api := server.NewHTTPServer(*listen, srv.Handler())
	var watcher interface{ Start(context.Context) error }
	if *certDir != "" {
		if watcher, err = gateTLS(api, *certDir); err != nil {
			return err
		}
	}
	// Bound before anything starts: a taken port is an error at once.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("gate API: %w", err)
	}

	// The gate's own parts run until the API has drained and shut down,
	// not until the signal: decisions need a live snapshot to the end.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return src.Run(gctx) })
	g.Go(func() error { return chronLog.Start(gctx) })
	g.Go(func() error { return holder.Run(gctx) })
	if watcher != nil {
		g.Go(func() error { return watcher.Start(gctx) })
	}
	g.Go(func() error {
		log.Info("gate listening", "address", *listen, "replica", *replica, "tls", api.TLSConfig != nil)
		if err := serveGate(api, ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gate API on %s: %w", *listen, err)
		}
		return nil
	})
	if *metricsAddr != "0" {
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return err
		}
		ms, err := metricsserver.NewServer(mf.options(*metricsAddr), cfg, hc)
		if err != nil {
			return fmt.Errorf("metrics on %s: %w", *metricsAddr, err)
		}
		g.Go(func() error { return ms.Start(gctx) })
	}
	g.Go(func() error {
		defer stopRun()
		select {
		case <-ctx.Done(): // SIGTERM: leave the endpoints first, then stop
			srv.Drain()
			log.Info("shutting down: /ready answers 503 while requests drain", "drain", *drain)
			select {
			case <-time.After(*drain):
			case <-gctx.Done():
			}
		case <-gctx.Done(): // a part failed: stop now
		}
		// Finish in-flight decisions (and their Chron rows) before exiting.
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := api.Shutdown(sctx)
		// The last interval's refused requests, before the writer goes;
		// the last checkpoint is the writer's last head.
		return errors.Join(err, refusals.Flush(sctx), writer.Close(), holder.Release(sctx))
	})
	return g.Wait()
}

func defaultReplica() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	h, _ := os.Hostname()
	return h
}
