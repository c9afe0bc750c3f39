package main

// `bench scale`: 1, 2, 4… gate processes, each with its own Chron stream,
// against one PostgreSQL, the load's connections spread over them
// round-robin, nothing pinned. It shows what a replica adds and where
// PostgreSQL stops keeping up: its cores busy, and its CPU per decision.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// scalePoint is one count of gates.
type scalePoint struct {
	Gates int   `json:"gates"`
	Point point `json:"point"`
	// Chron: decision rows committed by all gates vs what they answered.
	Answered int64 `json:"answered"`
	Shed     int64 `json:"shed"`
	Refused  int64 `json:"refused"`
	Rows     int64 `json:"rows"`
}

func scale(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	sizeName := fs.String("size", "small", "fixture size: small, 1k or 10k")
	gates := fs.String("gates", "1,2,4", "gate processes to run at once, comma-separated counts")
	conns := fs.Int("conns", 64, "connections in all, spread over the gates round-robin")
	duration := fs.Duration("duration", 5*time.Second, "measured time per count")
	warmup := fs.Duration("warmup", time.Second, "warmup per count")
	rounds := fs.Int("rounds", 1, "rounds per count; the median round is reported")
	seed := fs.Uint64("seed", 1, "fixture seed")
	tarpit := fs.Duration("tarpit", -1, "the gates' hold of a RATE_LIMITED answer (bench run -h says why the default is none)")
	pgSet := fs.String("pg-settings", "", "extra PostgreSQL settings, comma-separated name=value, after (and over) the bench's WAL settings: "+strings.Join(walSettings, ","))
	out := fs.String("out", "", "directory for the gates' logs and results.json (default: a temp dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := fixture.SizeNamed(*sizeName)
	if err != nil {
		return err
	}
	var counts []int
	for _, n := range strings.Split(*gates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v < 1 || v > *conns {
			return fmt.Errorf("-gates: %q is not a count from 1 to -conns (%d)", n, *conns)
		}
		counts = append(counts, v)
	}
	c := config{seed: *seed, duration: *duration, warmup: *warmup, rounds: max(*rounds, 1), tarpit: *tarpit,
		out: *out, placement: placeUnpinned, cpus: runtime.NumCPU(), verify: 500}
	c.pgSettings = pgSettings(*pgSet)
	if c.out == "" {
		if c.out, err = os.MkdirTemp("", "claiim-bench-scale-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pg, err := pgtest.StartWith(ctx, pgtest.Options{Settings: c.pgSettings})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL (make bench-scale installs it via hack/ensure-deps.sh): %w", err)
	}
	defer pg.Stop()
	if c.postmaster, err = postmasterOf(ctx, pg.URL); err != nil {
		return err
	}
	fmt.Printf("CLAIIM gates against one PostgreSQL — %d CPUs, nothing pinned; %s fixture, %d connections in all; %s per count after %s warmup\n",
		c.cpus, size.Name, *conns, c.duration, c.warmup)
	fmt.Printf("logs and results: %s\n", c.out)
	var all []scalePoint
	for _, n := range counts {
		sp, err := c.scaleTo(ctx, pg, size, n, *conns)
		if err != nil {
			return fmt.Errorf("%d gates: %w", n, err)
		}
		all = append(all, sp)
	}
	printScale(os.Stdout, all, c.cpus)
	b, _ := json.MarshalIndent(all, "", "  ")
	return os.WriteFile(filepath.Join(c.out, "results.json"), b, 0o644)
}

// scaleTo runs n gates on a fresh database, loads them, and checks what
// they wrote: rows against answers, and the chain under their key.
func (c *config) scaleTo(ctx context.Context, pg *pgtest.Server, size fixture.Size, n, conns int) (scalePoint, error) {
	sp := scalePoint{Gates: n}
	dir := filepath.Join(c.out, fmt.Sprintf("gates-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sp, err
	}
	db, err := c.newChronDB(ctx, pg, dir, fmt.Sprintf("scale_%d", n))
	if err != nil {
		return sp, err
	}
	f := fixture.Generate(c.seed, size)
	snap := decide.Build(f.Inputs)
	want := make([]decide.Decision, len(f.Requests))
	for i := range f.Requests {
		want[i] = f.Decide(snap, &f.Requests[i])
	}
	gateReqs, opaReqs := requests(f)
	// Every gate of a set shares the gate's key Secret; each has a stream.
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	m := cpuMeter{postmaster: c.postmaster}
	var addrs []string
	for i := range n {
		p, err := c.start(ctx, dir, fmt.Sprintf("gate-%d", i), true, append([]string{"serve-gate", "-seed", fmt.Sprint(c.seed),
			"-size", size.Name, "-stream", fmt.Sprintf("gate/bench-%d", i), "-tarpit", c.tarpit.String()}, db.gateArgs()...)...)
		if err != nil {
			return sp, err
		}
		procs = append(procs, p)
		if err := c.verifyAnswers(tGate, p.addr, f, gateReqs, opaReqs, want); err != nil {
			return sp, err
		}
		addrs = append(addrs, p.addr)
		m.servers = append(m.servers, p.cmd.Process.Pid)
	}
	check := func(i, status int, _ []byte) error { return gateAnswered(want[i%len(want)], status) }
	if sp.Point, err = c.measure(ctx, fmt.Sprintf("%d gate(s)", n), addrs, m, gateReqs, check, conns, 0); err != nil {
		return sp, err
	}
	for _, p := range procs {
		st, err := gateStatsOf(p.addr)
		if err != nil {
			return sp, err
		}
		rows, err := countRows(ctx, db.owner, st.Stream)
		if err != nil {
			return sp, err
		}
		sp.Answered, sp.Shed, sp.Refused, sp.Rows = sp.Answered+st.Answered, sp.Shed+st.Writer.Overloaded, sp.Refused+st.Refused, sp.Rows+rows
		p.stop() // its refusals' counts flushed before verify
	}
	if sp.Rows != sp.Answered-sp.Shed-sp.Refused {
		return sp, fmt.Errorf("the gates answered %d decisions (%d shed, %d unauthenticated) but Chron holds %d decision rows",
			sp.Answered, sp.Shed, sp.Refused, sp.Rows)
	}
	_, err = db.verify(ctx, nil)
	return sp, err
}

func printScale(w io.Writer, all []scalePoint, cpus int) {
	fmt.Fprintf(w, "\nGates against one PostgreSQL (closed loop, nothing pinned, %d CPUs; CPU in µs per decision):\n", cpus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "gates\tdecisions/s\tper gate\tp50\tp99\terrors\tgate CPU\tPostgreSQL CPU\tgate cores\tPostgreSQL cores\tanswers = rows\t")
	for _, s := range all {
		p := s.Point
		per := make([]string, len(p.PerServer))
		for i, r := range p.PerServer {
			per[i] = fmt.Sprintf("%.0f", r)
		}
		if len(per) == 0 {
			per = []string{fmt.Sprintf("%.0f", p.Rate)}
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%d = %d\t\n", s.Gates, p.Rate, strings.Join(per, " / "),
			ms(p.P50), ms(p.P99), p.Errors, p.CPU.ServerPerDecision, p.CPU.PGPerDecision, p.CPU.ServerCores, p.CPU.PGCores,
			s.Answered-s.Shed-s.Refused, s.Rows)
	}
	_ = tw.Flush()
}
