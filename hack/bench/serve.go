package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
)

// staticSnapshots serves one snapshot built from the fixture: the same
// decide.Build the gate's informer source calls, without the apiserver.
type staticSnapshots struct{ snap *decide.Snapshot }

func (s staticSnapshots) Snapshot() *decide.Snapshot { return s.snap }
func (s staticSnapshots) Ready() error               { return nil }

// gateStats is what the orchestrator reads after a run.
type gateStats struct {
	Answered int64             `json:"answered"` // /v/validate responses written
	Refused  int64             `json:"refused"`  // of which refused unauthenticated (401, 429): counted, not rows
	Writer   chron.WriterStats `json:"writer"`
	Stream   string            `json:"stream"`
}

// serveGate runs the gate's HTTP server and Chron writer (the production
// code: server.Server, chron.Writer with its defaults) over the fixture's
// snapshot. It writes as production does: logged in as a member of
// chron_gate_writer (row-level security applies, so no COPY), chaining
// rows with its chain key (format v2) read from a directory as the gate
// reads its mounted Secret. Like the gate, it does not migrate.
func serveGate(args []string) error {
	fs := flag.NewFlagSet("serve-gate", flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "fixture seed")
	sizeName := fs.String("size", "small", "fixture size: small, 1k or 10k")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	dbURL := fs.String("database-url", "", "Chron's PostgreSQL URL, as a member of chron_gate_writer")
	keysDir := fs.String("chron-keys", "", "directory of the gate's Chron keys (one file per Secret key, as mounted)")
	stream := fs.String("stream", "gate/bench", "Chron stream of this gate")
	maxBatch := fs.Int("max-batch", 0, "Chron rows per transaction (0: the writer's default)")
	maxWait := fs.Duration("max-wait", 0, "Chron batch wait (0: the writer's default, the adaptive linger; 1ns: none)")
	queue := fs.Int("queue-size", 0, "Chron write queue bound (0: the writer's default)")
	tarpit := fs.Duration("tarpit", 0, "how long a RATE_LIMITED answer is held (0: the gate's default; negative: not held)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := fixture.SizeNamed(*sizeName)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	server.TuneGC() // as the gate command does
	f := fixture.Generate(*seed, size)
	snap := decide.Build(f.Inputs)

	pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-gate", // as the gate command opens it
		StatementTimeout: chron.ComponentStatementTimeout, IdleInTxTimeout: chron.ComponentIdleInTxTimeout})
	if err != nil {
		return err
	}
	defer pool.Close()
	keys, err := chronlease.ReadKeyDir(*keysDir, chron.ScopeGate)
	if err != nil {
		return fmt.Errorf("the gate chains Chron with its key: %w", err)
	}
	key := keys.ChainKey()
	metrics := server.NewMetrics(nil)
	w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: *stream, Key: &key, MaxBatch: *maxBatch, MaxWait: *maxWait,
		QueueSize: *queue, OnCommit: metrics.ObserveCommit})
	if err != nil {
		return err
	}
	refusals := &server.Refusals{Log: w, Replica: "bench", Logger: logr.Discard(), Metrics: metrics}
	srv := &server.Server{Snapshots: staticSnapshots{snap}, Log: w, DB: pool, Replica: "bench", Logger: logr.Discard(), Metrics: metrics,
		Refusals: refusals, Limits: server.AuthLimits{Tarpit: *tarpit}}
	var answered, refused atomic.Int64
	gate := srv.Handler()
	mux := http.NewServeMux()
	mux.Handle("/", gate)
	mux.HandleFunc("POST /v/validate", func(rw http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: rw}
		gate.ServeHTTP(sw, r)
		answered.Add(1)
		if sw.status == http.StatusUnauthorized || sw.status == http.StatusTooManyRequests && !sw.overloaded {
			refused.Add(1)
		}
	})
	// The refused requests' aggregated rows, written now rather than at
	// the end of their interval, so the orchestrator can count them.
	mux.HandleFunc("POST /bench/flush", func(rw http.ResponseWriter, r *http.Request) {
		if err := refusals.Flush(r.Context()); err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /debug/pprof/allocs", pprof.Handler("allocs"))
	mux.HandleFunc("GET /bench/stats", func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(gateStats{Answered: answered.Load(), Refused: refused.Load(), Writer: w.Stats(), Stream: *stream})
	})
	err = serve(ctx, *listen, mux)
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, refusals.Flush(fctx), w.Close())
}

// statusWriter remembers the status a handler wrote, and whether a 429
// was the writer's OVERLOADED (a decision shed) rather than RATE_LIMITED.
type statusWriter struct {
	http.ResponseWriter
	status     int
	overloaded bool
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	// Only a rate-limited refusal carries Retry-After.
	s.overloaded = code == http.StatusTooManyRequests && s.Header().Get("Retry-After") == ""
	s.ResponseWriter.WriteHeader(code)
}

// serveNoop is the ceiling: an HTTP server that reads the body and answers
// a fixed decision, with no policy and no log. It also receives OPA's
// decision-log uploads and counts the events in them.
func serveNoop(args []string) error {
	fs := flag.NewFlagSet("serve-noop", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	answer := []byte(`{"outcome":"ALLOW","reason":"NOOP","message":"no policy, no log"}` + "\n")
	var logged atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /logs", func(rw http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		var events []json.RawMessage
		if err := json.NewDecoder(body).Decode(&events); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		logged.Add(int64(len(events)))
	})
	mux.HandleFunc("GET /bench/stats", func(rw http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(rw).Encode(map[string]int64{"logged": logged.Load()})
	})
	mux.HandleFunc("GET /health", func(rw http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /", func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(answer)
	})
	return serve(ctx, *listen, mux)
}

// serve runs h like the gate command does, and prints the bound address on
// stdout for the orchestrator.
func serve(ctx context.Context, addr string, h http.Handler) error {
	s := server.NewHTTPServer(addr, h)
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.Shutdown(sctx)
	}
}
