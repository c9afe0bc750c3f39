package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/gate/server"
)

// RunGate runs the gate: the decision API agents ask before every action.
func RunGate(args []string) error {
	fs := flag.NewFlagSet("gate", flag.ContinueOnError)
	listen := fs.String("listen", ":8181", "address of the gate API (/health, /ready, /v/init, /v/validate)")
	metricsAddr := fs.String("metrics-bind-address", ":8182", "address of the Prometheus metrics endpoint; 0 disables it")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron (default $DATABASE_URL)")
	replica := fs.String("replica", defaultReplica(), "this replica's name; its Chron stream (default $POD_NAME or the hostname)")
	migrate := fs.Bool("migrate", true, "apply Chron's schema migrations at start (needs a role that may create tables)")
	writeTimeout := fs.Duration("write-timeout", 2*time.Second, "longest wait for a decision's Chron row; past it the answer is DENY")
	staleAfter := fs.Duration("stale-after", 10*time.Second, "longest the gate answers from its view of the apiserver without proving it current (a live list its watches have caught up with); past it every answer is DENY NOT_READY")
	drain := fs.Duration("shutdown-drain", 5*time.Second, "on SIGTERM, how long /ready answers 503 while decisions are still answered, before the gate stops listening")
	cs := chronStreamFlags(fs, "gate", "/etc/claiim/chron-keys", 5)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("gate")
	server.TuneGC()
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := server.NewMetrics(reg)
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
	chronMetrics := chronlease.NewMetrics(reg)
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
	live := direct
	// PostgreSQL may be down at start: the gate serves (DENY
	// CHRON_UNAVAILABLE) and migrates in the background (chronlog.go)
	// rather than exiting into a crash-loop backoff.
	var chronLog server.Log = writer
	var migration *migratingChron
	if *migrate {
		migration = newMigratingChron("gate", pool, writer, log.WithName("chron"))
		chronLog = migration
	}
	srv := &server.Server{Snapshots: server.Require(src, holder.Ready), Log: chronLog, DB: pool, Replica: *replica, WriteTimeout: *writeTimeout,
		Logger: log, Metrics: metrics, Reviewer: &server.TokenReviewer{Client: live}}
	api := &http.Server{Addr: *listen, Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}

	// The gate's own parts run until the API has drained and shut down,
	// not until the signal: decisions need a live snapshot to the end.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return src.Run(gctx) })
	g.Go(func() error { return holder.Run(gctx) })
	if migration != nil {
		g.Go(func() error { return migration.Start(gctx) })
	}
	g.Go(func() error {
		log.Info("gate listening", "address", *listen, "replica", *replica)
		if err := api.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gate API on %s: %w", *listen, err)
		}
		return nil
	})
	if *metricsAddr != "0" {
		ms := &http.Server{Addr: *metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := ms.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics on %s: %w", *metricsAddr, err)
			}
			return nil
		})
		g.Go(func() error { <-gctx.Done(); return ms.Close() })
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
		return errors.Join(err, writer.Close(), holder.Release(sctx)) // the last checkpoint is the writer's last head
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
