package main

// `bench run`: its flags, and the run over every placement (placement.go)
// and fixture size. One size is measured in measure.go; the servers are
// started in procs.go, their answers held to the engine in checks.go,
// Chron's rows checked in audit.go, and the table printed by table.go.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// config is one benchmark run's settings.
type config struct {
	seed            uint64
	sizes           []fixture.Size
	conns           []int
	duration        time.Duration
	warmup          time.Duration
	rounds          int
	rates           []float64
	opa             string
	placements      []string
	placement       string // the one running
	mix             string
	tarpit          time.Duration
	pgCPU           string
	out             string
	maxBatch        int
	maxWait         time.Duration
	verify          int
	targets         map[string]bool
	cpus            int    // the machine's (this process's when it started)
	allCPUs         string // their list, for taskset
	repin           bool   // this process is pinned: unpin it for the next placement
	pgSettings      []string
	loadCPU, srvCPU string
	postmaster      int // PostgreSQL's, for its CPU time (0: not measured)
	gomaxprocs      int // every Go server's GOMAXPROCS (0: Go's own)
}

// Request mixes.
const (
	mixOwn  = "own"
	mixSeed = "seed"
)

// Targets, in the order they run.
const (
	tNoop     = "no-op (ceiling)"
	tOPA      = "OPA, no log"
	tOPAPlain = "OPA, plain Rego" // the seed's rules written directly; small only
	tOPALog   = "OPA, async decision log"
	tGate     = "gate + Chron (durable)"
)

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	quick := fs.Bool("quick", os.Getenv("BENCH") == "quick", "quick mode (under 2 minutes): 10k fixture, pinned only, 2s per point, one round (default from BENCH=quick)")
	sizes := fs.String("sizes", "", "fixture sizes, comma-separated (default: small,1k,10k; quick: 10k)")
	conns := fs.String("conns", "1,8,32,64,256,512", "connection counts, comma-separated (the gate's answer waits for a commit, so its peak needs more connections than a server answering from memory)")
	duration := fs.Duration("duration", 0, "measured time per point (default 5s; quick 2s)")
	warmup := fs.Duration("warmup", 0, "warmup per point (default 1s; quick 500ms)")
	rounds := fs.Int("rounds", 0, "rounds per point; the median round is reported (default 3; quick 1)")
	rates := fs.String("rates", "1000,10000", "decisions/s offered in the open-loop latency tests, comma-separated (empty skips them)")
	seed := fs.Uint64("seed", 1, "fixture seed")
	opa := fs.String("opa", os.Getenv("OPA"), "the opa binary (default $OPA)")
	placement := fs.String("placement", "", "placements, comma-separated: pinned (load on CPU 0; the server under test and PostgreSQL on CPU 1, with taskset) "+
		"and unpinned (no taskset: everything shares every CPU, as on a real node) (default: pinned,unpinned; quick: pinned)")
	pgCPU := fs.String("pg-cpu", "server", "pinned placement: where PostgreSQL runs, server (the server's CPU) or any")
	out := fs.String("out", "", "directory for logs, the fixture files and results.json (default: a temp dir)")
	maxBatch := fs.Int("max-batch", 0, "the gate's Chron rows per transaction (0: default)")
	maxWait := fs.Duration("max-wait", 0, "the gate's Chron batch wait (0: default)")
	verify := fs.Int("verify", 500, "requests of the mix each server must answer like the engine before it is loaded")
	pgSet := fs.String("pg-settings", "", "extra PostgreSQL settings, comma-separated name=value, after (and over) the bench's WAL settings: "+strings.Join(walSettings, ","))
	only := fs.String("targets", "", "run only these targets: noop,opa,opa-plain,opa-log,gate (default all)")
	tarpit := fs.Duration("tarpit", -1, "the gate's hold of a RATE_LIMITED answer (0: the gate's default, 1s). The mix's wrong secrets pass the per-token "+
		"allowance at any rate measured here, and a held answer stops one of the generator's few connections for that long, where on a real node "+
		"it slows only the client that sent it (bench abuse measures the hold): by default they are answered at once, which costs the gate more CPU, not less")
	gomaxprocs := fs.Int("gomaxprocs", 0, "GOMAXPROCS of every Go server under test (0: Go's own: the CPUs it may use, or a CPU limit rounded up and at least 2)")
	mix := fs.String("mix", mixOwn, "the requests: own (each size's own mix) or seed (the seed's requests at every size, so a size's cost is size alone)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := config{seed: *seed, opa: *opa, pgCPU: *pgCPU, out: *out, tarpit: *tarpit,
		maxBatch: *maxBatch, maxWait: *maxWait, verify: *verify, targets: map[string]bool{}, gomaxprocs: *gomaxprocs}
	if c.gomaxprocs < 0 {
		return fmt.Errorf("-gomaxprocs=%d: give a number of CPUs, or 0 for Go's own", c.gomaxprocs)
	}
	if c.mix = *mix; c.mix != mixOwn && c.mix != mixSeed {
		return fmt.Errorf("-mix: %q is neither own nor seed", c.mix)
	}
	c.pgSettings = pgSettings(*pgSet)
	c.duration, c.warmup, c.rounds = 5*time.Second, time.Second, 3
	sizeList, places := "small,1k,10k", "pinned,unpinned"
	if *quick {
		c.duration, c.warmup, c.rounds, sizeList, places = 2*time.Second, 500*time.Millisecond, 1, "10k", "pinned"
	}
	*placement = cmp.Or(*placement, places)
	if *duration > 0 {
		c.duration = *duration
	}
	if *warmup > 0 {
		c.warmup = *warmup
	}
	if *rounds > 0 {
		c.rounds = *rounds
	}
	if *sizes != "" {
		sizeList = *sizes
	}
	for _, n := range strings.Split(sizeList, ",") {
		s, err := fixture.SizeNamed(strings.TrimSpace(n))
		if err != nil {
			return err
		}
		c.sizes = append(c.sizes, s)
	}
	for _, n := range strings.Split(*conns, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v < 1 {
			return fmt.Errorf("-conns: %q is not a positive number", n)
		}
		c.conns = append(c.conns, v)
	}
	for _, n := range strings.Split(*rates, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		v, err := strconv.ParseFloat(n, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("-rates: %q is not a positive rate", n)
		}
		c.rates = append(c.rates, v)
	}
	names := map[string]string{"noop": tNoop, "opa": tOPA, "opa-plain": tOPAPlain, "opa-log": tOPALog, "gate": tGate}
	for _, n := range strings.Split(cmp.Or(*only, "noop,opa,opa-plain,opa-log,gate"), ",") {
		t, ok := names[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("-targets: unknown target %q (noop, opa, opa-plain, opa-log, gate)", n)
		}
		c.targets[t] = true
	}
	if (c.targets[tOPA] || c.targets[tOPAPlain] || c.targets[tOPALog]) && c.opa == "" {
		return errors.New("no OPA binary: pass -opa or set $OPA (make bench builds it)")
	}

	for _, n := range strings.Split(cmp.Or(*placement, "pinned"), ",") {
		switch n = strings.TrimSpace(n); n {
		case placePinned, placeUnpinned:
			c.placements = append(c.placements, n)
		default:
			return fmt.Errorf("-placement: unknown placement %q (pinned, unpinned)", n)
		}
	}
	c.cpus = runtime.NumCPU()
	if c.out == "" {
		d, err := os.MkdirTemp("", "claiim-bench-")
		if err != nil {
			return err
		}
		c.out = d
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	return c.run()
}

func (c *config) run() (err error) {
	// On a signal, children are killed (exec.CommandContext) and the
	// deferred cleanups still stop PostgreSQL.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	fmt.Printf("CLAIIM gate vs OPA — %d CPUs; %s per point, %s warmup, %d round(s); placements %s\n",
		c.cpus, c.duration, c.warmup, c.rounds, strings.Join(c.placements, ", "))
	fmt.Printf("logs and results: %s\n", c.out)

	var all []sizeResult
	// Whatever was measured is printed and saved, even if a later step fails.
	defer func() {
		if len(all) == 0 {
			return
		}
		if err != nil {
			fmt.Println("\nthe run failed; what it measured before that:")
		}
		printTable(os.Stdout, all)
		b, _ := json.MarshalIndent(all, "", "  ")
		err = errors.Join(err, os.WriteFile(filepath.Join(c.out, "results.json"), b, 0o644))
		fmt.Printf("\ntotal %s; results.json and server logs in %s\n", time.Since(start).Round(time.Second), c.out)
	}()
	for _, pl := range c.placements {
		err := c.place(pl, func(pgCPUs string) error {
			pg, err := pgtest.StartWith(ctx, pgtest.Options{CPUs: pgCPUs, Settings: c.pgSettings})
			if err != nil {
				return fmt.Errorf("starting PostgreSQL (make bench installs it via hack/ensure-deps.sh): %w", err)
			}
			defer pg.Stop()
			if c.postmaster, err = postmasterOf(ctx, pg.URL); err != nil {
				return err
			}
			for i, size := range c.sizes {
				r, err := c.runSize(ctx, pg, size, i == len(c.sizes)-1)
				r.Placement = pl
				if len(r.Points) > 0 {
					all = append(all, r)
				}
				if err != nil {
					return fmt.Errorf("%s fixture, %s: %w", size.Name, pl, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
