package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/hack/bench/load"
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
	pin             bool
	pgCPU           string
	out             string
	maxBatch        int
	maxWait         time.Duration
	verify          int
	targets         map[string]bool
	cpus            int // the machine's, before pinning
	pgSettings      []string
	loadCPU, srvCPU string
}

// Targets, in the order they run.
const (
	tNoop   = "no-op (ceiling)"
	tOPA    = "OPA, no log"
	tOPALog = "OPA, async decision log"
	tGate   = "gate + Chron (durable)"
)

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	quick := fs.Bool("quick", os.Getenv("BENCH") == "quick", "quick mode (under 2 minutes): 10k fixture, 2s per point, one round (default from BENCH=quick)")
	sizes := fs.String("sizes", "", "fixture sizes, comma-separated (default: small,1k,10k; quick: 10k)")
	conns := fs.String("conns", "1,8,32,64", "connection counts, comma-separated")
	duration := fs.Duration("duration", 0, "measured time per point (default 5s; quick 2s)")
	warmup := fs.Duration("warmup", 0, "warmup per point (default 1s; quick 500ms)")
	rounds := fs.Int("rounds", 0, "rounds per point; the median round is reported (default 3; quick 1)")
	rates := fs.String("rates", "1000,10000", "decisions/s offered in the open-loop latency tests, comma-separated (empty skips them)")
	seed := fs.Uint64("seed", 1, "fixture seed")
	opa := fs.String("opa", os.Getenv("OPA"), "the opa binary (default $OPA)")
	pin := fs.Bool("pin", true, "pin the load generator to CPU 0 and the server under test to CPU 1 with taskset")
	pgCPU := fs.String("pg-cpu", "server", "where PostgreSQL runs: server (the server's CPU) or any")
	out := fs.String("out", "", "directory for logs, the fixture files and results.json (default: a temp dir)")
	maxBatch := fs.Int("max-batch", 0, "the gate's Chron rows per transaction (0: default)")
	maxWait := fs.Duration("max-wait", 0, "the gate's Chron batch wait (0: default)")
	verify := fs.Int("verify", 500, "requests of the mix each server must answer like the engine before it is loaded")
	pgSet := fs.String("pg-settings", "", "extra PostgreSQL settings, comma-separated name=value")
	only := fs.String("targets", "", "run only these targets: noop,opa,opa-log,gate (default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := config{seed: *seed, opa: *opa, pin: *pin, pgCPU: *pgCPU, out: *out,
		maxBatch: *maxBatch, maxWait: *maxWait, verify: *verify, targets: map[string]bool{}}
	if *pgSet != "" {
		c.pgSettings = strings.Split(*pgSet, ",")
	}
	c.duration, c.warmup, c.rounds = 5*time.Second, time.Second, 3
	sizeList := "small,1k,10k"
	if *quick {
		c.duration, c.warmup, c.rounds, sizeList = 2*time.Second, 500*time.Millisecond, 1, "10k"
	}
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
	names := map[string]string{"noop": tNoop, "opa": tOPA, "opa-log": tOPALog, "gate": tGate}
	for _, n := range strings.Split(cmp.Or(*only, "noop,opa,opa-log,gate"), ",") {
		t, ok := names[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("-targets: unknown target %q (noop, opa, opa-log, gate)", n)
		}
		c.targets[t] = true
	}
	if (c.targets[tOPA] || c.targets[tOPALog]) && c.opa == "" {
		return errors.New("no OPA binary: pass -opa or set $OPA (make bench builds it)")
	}

	c.cpus = runtime.NumCPU()
	if n, err := strconv.Atoi(os.Getenv("BENCH_PINNED")); err == nil {
		c.cpus = n // re-run pinned: NumCPU now counts only CPU 0
	}
	if c.pin {
		if c.cpus < 2 || exec.Command("taskset", "-c", "1", "true").Run() != nil {
			fmt.Println("note: taskset or a second CPU is unavailable; running unpinned")
			c.pin = false
		} else if os.Getenv("BENCH_PINNED") == "" {
			// Re-run under taskset so the whole generator, every thread of
			// it, stays on CPU 0 (GOMAXPROCS follows the affinity).
			self, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", self, "run"}, args...)...)
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // let it clean up
			cmd.WaitDelay = time.Minute
			cmd.Env = append(os.Environ(), fmt.Sprintf("BENCH_PINNED=%d", c.cpus))
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			return cmd.Run()
		}
	}
	if c.pin {
		c.loadCPU, c.srvCPU = "0", "1"
	}
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
	pgCPUs := ""
	if c.pgCPU == "server" {
		pgCPUs = c.srvCPU
	}
	fmt.Printf("CLAIIM gate vs OPA — %d CPUs, load on CPU %s, servers on CPU %s, PostgreSQL on CPU %s; %s per point, %s warmup, %d round(s)\n",
		c.cpus, cmp.Or(c.loadCPU, "any"), cmp.Or(c.srvCPU, "any"), cmp.Or(pgCPUs, "any"), c.duration, c.warmup, c.rounds)
	fmt.Printf("logs and results: %s\n", c.out)
	pg, err := pgtest.StartWith(ctx, pgtest.Options{CPUs: pgCPUs, Settings: c.pgSettings})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL (make bench installs it via hack/ensure-deps.sh): %w", err)
	}
	defer pg.Stop()

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
	for i, size := range c.sizes {
		r, err := c.runSize(ctx, pg, size, i == len(c.sizes)-1)
		if len(r.Points) > 0 {
			all = append(all, r)
		}
		if err != nil {
			return fmt.Errorf("%s fixture: %w", size.Name, err)
		}
	}
	return nil
}

// point is one measurement: a target at a connection count.
type point struct {
	Target string        `json:"target"`
	Conns  int           `json:"conns"`
	Rate   float64       `json:"decisions_per_s"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Errors int64         `json:"errors"`
	Rounds []float64     `json:"rounds_decisions_per_s"`

	answered int64   // responses in all rounds, warmup included
	offered  float64 // open loop: the rate offered
}

// sizeResult is everything measured on one fixture.
type sizeResult struct {
	Size   string  `json:"size"`
	Agents int     `json:"agents"`
	Pols   int     `json:"policies"`
	Points []point `json:"points"`

	// Chron: rows committed vs decisions the gate answered (all runs).
	GateAnswered int64   `json:"gate_answered"`
	ChronRows    int64   `json:"chron_rows"`
	GateShed     int64   `json:"gate_shed"`
	AvgBatch     float64 `json:"chron_rows_per_commit"`
	// OPA's asynchronous log: events the sink received vs decisions answered.
	OPAAnswered int64 `json:"opa_log_answered"`
	OPALogged   int64 `json:"opa_log_delivered"`

	Open []point `json:"open_loop,omitempty"`

	Overload *overloadResult `json:"overload,omitempty"`

	// Chron down: how long the gate took to answer DENY.
	OutageMax    time.Duration `json:"chron_down_deny_max_ns,omitempty"`
	OutageReason string        `json:"chron_down_reason,omitempty"`
}

func (c *config) runSize(ctx context.Context, pg *pgtest.Server, size fixture.Size, last bool) (sizeResult, error) {
	res := sizeResult{Size: size.Name, Agents: size.Agents, Pols: size.Policies}
	f := fixture.Generate(c.seed, size)
	snap := decide.Build(f.Inputs)
	want := make([]decide.Decision, len(f.Requests))
	for i := range f.Requests {
		want[i] = f.Decide(snap, &f.Requests[i])
	}
	dir := filepath.Join(c.out, size.Name)
	if err := writeFixture(f, dir); err != nil {
		return res, err
	}
	gateReqs, opaReqs := requests(f)
	fmt.Printf("\n== %s: %d agents, %d policies, %d distinct requests ==\n", size.Name, size.Agents, size.Policies, len(f.Requests))

	// The sink of OPA's decision log runs with the load generator, so
	// OPA's own CPU is all the server side gets.
	sink, err := c.start(ctx, dir, "sink", false, "serve-noop")
	if err != nil {
		return res, err
	}
	defer sink.stop()

	var url string // the gate's database
	for _, t := range []string{tNoop, tOPA, tOPALog, tGate} {
		if !c.targets[t] {
			continue
		}
		var p *proc
		var reqs []load.Req
		var check func(int, int, []byte) error
		switch t {
		case tNoop:
			p, err = c.start(ctx, dir, "noop", true, "serve-noop")
			reqs, check = gateReqs, func(_, status int, _ []byte) error { return statusIs(status, 200) }
		case tOPA, tOPALog:
			p, err = c.startOPA(ctx, dir, t == tOPALog, sink.addr)
			reqs, check = opaReqs, func(i, status int, body []byte) error {
				if err := statusIs(status, 200); err != nil {
					return err
				}
				if bytes.Contains(body, []byte(`"outcome":"ALLOW"`)) != (want[i%len(want)].Outcome == decide.Allow) {
					return fmt.Errorf("OPA answered %s; the engine says %s", body, want[i%len(want)].Outcome)
				}
				return nil
			}
		case tGate:
			if url, err = pg.CreateDatabase(ctx, fmt.Sprintf("bench_%s_%d", size.Name, time.Now().UnixNano())); err != nil {
				return res, err
			}
			args := []string{"serve-gate", "-seed", fmt.Sprint(c.seed), "-size", size.Name, "-database-url", url, "-stream", "gate/bench-" + size.Name}
			if c.maxBatch > 0 {
				args = append(args, "-max-batch", fmt.Sprint(c.maxBatch))
			}
			if c.maxWait != 0 {
				args = append(args, "-max-wait", c.maxWait.String())
			}
			p, err = c.start(ctx, dir, "gate", true, args...)
			reqs, check = gateReqs, func(i, status int, _ []byte) error {
				return statusIs(status, gateStatus(want[i%len(want)]))
			}
		}
		if err != nil {
			return res, err
		}
		if err := c.verifyAnswers(t, p.addr, f, gateReqs, opaReqs, want); err != nil {
			p.stop()
			return res, err
		}
		if t == tOPALog {
			res.OPAAnswered += int64(min(c.verify, len(f.Requests)))
		}
		for _, n := range c.conns {
			pt, err := c.measure(ctx, t, p.addr, reqs, check, n, 0)
			if err != nil {
				p.stop()
				return res, fmt.Errorf("%s at %d connections: %w (server log: %s)", t, n, err, p.log)
			}
			res.Points = append(res.Points, pt)
			if t == tOPALog {
				res.OPAAnswered += pt.answered
			}
		}
		for _, rate := range c.rates {
			if t == tOPALog {
				break
			}
			pt, err := c.measure(ctx, t, p.addr, reqs, check, 64, rate)
			if err != nil {
				p.stop()
				return res, err
			}
			res.Open = append(res.Open, pt)
		}
		switch t {
		case tGate:
			st, err := gateStatsOf(p.addr)
			if err != nil {
				p.stop()
				return res, err
			}
			res.GateAnswered, res.GateShed = st.Answered, st.Writer.Overloaded
			if st.Writer.BatchesCommitted > 0 {
				res.AvgBatch = float64(st.Writer.RowsCommitted) / float64(st.Writer.BatchesCommitted)
			}
			if res.ChronRows, err = countRows(ctx, url, st.Stream); err != nil {
				p.stop()
				return res, err
			}
			if last {
				if res.Overload, err = c.overload(ctx, dir, size, url, gateReqs, want); err != nil {
					p.stop()
					return res, err
				}
				if pg.Port() == 0 {
					fmt.Println("  skipping the Chron-down step: the database is external ($" + pgtest.EnvURL + ")")
				} else if res.OutageMax, res.OutageReason, err = outage(ctx, pg, p.addr, gateReqs, want); err != nil {
					p.stop()
					return res, err
				}
			}
		case tOPALog:
			// OPA uploads its buffer every 1-2s; stopping it flushes the rest.
			p.stop()
			var m map[string]int64
			if err := getJSON("http://"+sink.addr+"/bench/stats", &m); err != nil {
				return res, err
			}
			res.OPALogged = m["logged"]
		}
		p.stop()
	}
	return res, nil
}

// requests turns the mix into the gate's and OPA's HTTP requests.
func requests(f *fixture.Fixture) (gate, opa []load.Req) {
	for i := range f.Requests {
		r := &f.Requests[i]
		body, _ := json.Marshal(map[string]any{"action": r.Action, "context": r.Context, "skill_version_id": r.SkillVersionID})
		gate = append(gate, load.Req{Method: "POST", Path: "/v/validate", Body: body,
			Header: http.Header{"Authorization": {"Bearer " + r.Token}, "Content-Type": {"application/json"}}})
		in, _ := json.Marshal(map[string]any{"input": r.Input()})
		opa = append(opa, load.Req{Method: "POST", Path: "/v1/data/claiim/decision", Body: in,
			Header: http.Header{"Content-Type": {"application/json"}}})
	}
	return gate, opa
}

func gateStatus(d decide.Decision) int {
	switch {
	case d.Outcome == decide.Allow:
		return http.StatusOK
	case d.Reason == decide.ReasonUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

func statusIs(got, want int) error {
	if got != want {
		return fmt.Errorf("HTTP %d, want %d", got, want)
	}
	return nil
}

// measure runs one point: c.rounds rounds, the median by throughput kept.
func (c *config) measure(ctx context.Context, t, addr string, reqs []load.Req, check func(int, int, []byte) error, conns int, rate float64) (point, error) {
	var results []load.Result
	for range c.rounds {
		r, err := load.Run(ctx, addr, reqs, load.Options{Conns: conns, Duration: c.duration, Warmup: c.warmup, Rate: rate, Check: check})
		if err != nil {
			return point{}, err
		}
		results = append(results, r)
	}
	byRate := slices.Clone(results)
	slices.SortFunc(byRate, func(a, b load.Result) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
	m := byRate[len(byRate)/2]
	pt := point{Target: t, Conns: conns, Rate: m.PerSecond, P50: m.P50, P99: m.P99, offered: rate}
	for _, r := range results {
		pt.Errors += r.Errors
		pt.Rounds = append(pt.Rounds, r.PerSecond)
		pt.answered += r.Answered
	}
	mode := fmt.Sprintf("%2d conns", conns)
	if rate > 0 {
		mode = fmt.Sprintf("open loop %.0f/s offered", rate)
	}
	fmt.Printf("  %-26s %-24s %s\n", t, mode, load.Format(m))
	if pt.Errors > 0 {
		fmt.Printf("    errors: %v\n", m.ErrorSamples)
	}
	return pt, nil
}

// verifyAnswers sends the first requests of the mix one by one and holds
// each server to the engine's answers: the live half of the differential
// test (the no-op answers ALLOW to everything, so it is skipped).
func (c *config) verifyAnswers(t, addr string, f *fixture.Fixture, gate, opa []load.Req, want []decide.Decision) error {
	if t == tNoop {
		return nil
	}
	for i := 0; i < min(c.verify, len(f.Requests)); i++ {
		var got fixture.Answer
		switch t {
		case tGate:
			var resp struct {
				Outcome, Reason string
			}
			if err := postJSON(addr, gate[i], &resp); err != nil {
				return err
			}
			got = fixture.Answer{Outcome: resp.Outcome, Reason: resp.Reason}
		default:
			var resp struct {
				Result any `json:"result"`
			}
			if err := postJSON(addr, opa[i], &resp); err != nil {
				return err
			}
			a, err := fixture.AnswerFrom(resp.Result)
			if err != nil {
				return err
			}
			got = fixture.Answer{Outcome: a.Outcome, Reason: a.Reason}
		}
		if got.Outcome != string(want[i].Outcome) || got.Reason != want[i].Reason {
			return fmt.Errorf("%s answered request %d (%s %s) with %s %s; the engine says %s %s",
				t, i, f.Requests[i].Agent, f.Requests[i].Action, got.Outcome, got.Reason, want[i].Outcome, want[i].Reason)
		}
	}
	fmt.Printf("  %-26s answered the first %d requests like the engine\n", t, min(c.verify, len(f.Requests)))
	return nil
}

func postJSON(addr string, r load.Req, out any) error {
	req, err := http.NewRequest(r.Method, "http://"+addr+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	req.Header = r.Header.Clone()
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

func getJSON(url string, out any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func gateStatsOf(addr string) (gateStats, error) {
	var st gateStats
	return st, getJSON("http://"+addr+"/bench/stats", &st)
}

func countRows(ctx context.Context, url, stream string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM chron_records WHERE stream = $1 AND kind = 'decision'", stream).Scan(&n)
	return n, err
}

// overloadResult is a gate with a tiny Chron queue driven past it.
type overloadResult struct {
	Conns     int   `json:"conns"`
	QueueSize int   `json:"queue_size"`
	Answered  int64 `json:"answered"`
	Shed      int64 `json:"shed"` // answered 429 DENY OVERLOADED
	Rows      int64 `json:"rows"`
}

// overload starts a second gate whose Chron queue holds 16 records and
// drives it with 256 connections: what doesn't fit must be answered DENY
// OVERLOADED (429), and every other answer must have its row.
func (c *config) overload(ctx context.Context, dir string, size fixture.Size, url string, reqs []load.Req, want []decide.Decision) (*overloadResult, error) {
	o := &overloadResult{Conns: 256, QueueSize: 16}
	stream := "gate/bench-" + size.Name + "-overload"
	p, err := c.start(ctx, dir, "gate-overload", true, "serve-gate", "-seed", fmt.Sprint(c.seed), "-size", size.Name,
		"-database-url", url, "-stream", stream, "-queue-size", fmt.Sprint(o.QueueSize))
	if err != nil {
		return nil, err
	}
	defer p.stop()
	r, err := load.Run(ctx, p.addr, reqs, load.Options{Conns: o.Conns, Duration: c.duration, Warmup: c.warmup,
		Check: func(i, status int, _ []byte) error {
			if status == http.StatusTooManyRequests {
				return nil
			}
			return statusIs(status, gateStatus(want[i%len(want)]))
		}})
	if err != nil {
		return nil, err
	}
	if r.Errors > 0 {
		return nil, fmt.Errorf("overload: %d errors: %v", r.Errors, r.ErrorSamples)
	}
	st, err := gateStatsOf(p.addr)
	if err != nil {
		return nil, err
	}
	o.Answered, o.Shed = st.Answered, st.Writer.Overloaded
	if o.Rows, err = countRows(ctx, url, stream); err != nil {
		return nil, err
	}
	fmt.Printf("  %-26s %-24s %s; %d answered, %d shed as 429 OVERLOADED, %d rows\n", "gate, Chron queue of 16", "256 conns", load.Format(r), o.Answered, o.Shed, o.Rows)
	return o, nil
}

// outage stops PostgreSQL under a running gate and times its answers:
// each must be DENY, and come quickly.
func outage(ctx context.Context, pg *pgtest.Server, addr string, reqs []load.Req, want []decide.Decision) (time.Duration, string, error) {
	if err := pg.Control(ctx, "stop"); err != nil {
		return 0, "", err
	}
	defer func() { _ = pg.Control(ctx, "start") }()
	var worst time.Duration
	n := 0
	// Requests the engine would ALLOW: a DENY can only come from Chron.
	for i := 0; i < len(reqs) && n < 20; i++ {
		if want[i].Outcome != decide.Allow {
			continue
		}
		n++
		var resp struct{ Outcome, Reason string }
		t0 := time.Now()
		if err := postJSON(addr, reqs[i], &resp); err != nil {
			return 0, "", err
		}
		worst = max(worst, time.Since(t0))
		if resp.Outcome != string(decide.Deny) || resp.Reason != "CHRON_UNAVAILABLE" {
			return 0, "", fmt.Errorf("with Chron down the gate answered %s %s, want DENY CHRON_UNAVAILABLE", resp.Outcome, resp.Reason)
		}
	}
	fmt.Printf("  Chron down: %d requests the engine allows answered DENY CHRON_UNAVAILABLE, slowest in %s\n", n, worst.Round(time.Microsecond))
	return worst, "CHRON_UNAVAILABLE", nil
}

// proc is a server under test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{} // closed when the process has exited
}

// serverGOGC is the collector setting of every Go server under test: the
// gate sets it for itself (server.TuneGC), so OPA and the no-op get it too.
const serverGOGC = "400"

// launch starts argv (pinned to the server CPU when onServerCPU) with its
// output in logPath; stdout, when wanted, is returned instead.
func (c *config) launch(ctx context.Context, argv []string, logPath string, onServerCPU, wantStdout bool) (*proc, io.Reader, error) {
	if onServerCPU && c.srvCPU != "" {
		argv = append([]string{"taskset", "-c", c.srvCPU}, argv...)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	p := &proc{log: logPath, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), "GOGC="+serverGOGC)
	p.cmd.Stderr = logf
	var out io.Reader
	if wantStdout {
		if out, err = p.cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, nil, err
		}
	} else {
		p.cmd.Stdout = logf
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, out, nil
}

// start runs this command's serve-* mode and waits for the address it
// prints and its /health.
func (c *config) start(ctx context.Context, dir, name string, onServerCPU bool, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, out, err := c.launch(ctx, append([]string{self}, args...), filepath.Join(dir, name+".log"), onServerCPU, true)
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p.addr = <-line:
	case <-time.After(60 * time.Second):
	}
	if p.addr == "" {
		p.stop()
		return nil, fmt.Errorf("%s did not start; see %s", name, p.log)
	}
	return p, waitHealthy(p, "/health")
}

// startOPA runs `opa run --server` over the fixture's policy and data,
// with decision logs uploaded to the sink when logged.
func (c *config) startOPA(ctx context.Context, dir string, logged bool, sink string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	name := "opa"
	// The store setting embedded OPA gets too (fixture.PrepareOPA): data
	// read as OPA values, not converted on every read.
	args := []string{"run", "--server", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "error",
		"--disable-telemetry", "--optimize-store-for-read-speed"}
	if logged {
		name = "opa-log"
		cfg := filepath.Join(dir, "opa-decision-log.yaml")
		conf := fmt.Sprintf("services:\n  sink:\n    url: http://%s\ndecision_logs:\n  service: sink\n  reporting:\n    min_delay_seconds: 1\n    max_delay_seconds: 2\n", sink)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config-file", cfg)
	}
	args = append(args, filepath.Join(dir, "policy.rego"), filepath.Join(dir, "data.json"))
	p, _, err := c.launch(ctx, append([]string{c.opa}, args...), filepath.Join(dir, name+".log"), true, false)
	if err != nil {
		return nil, err
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)
	return p, waitHealthy(p, "/health")
}

func waitHealthy(p *proc, path string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := httpClient.Get("http://" + p.addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was healthy; see %s", p.cmd.Path, p.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("%s did not become healthy in a minute; see %s", p.cmd.Path, p.log)
		}
	}
}

// stop ends the server with SIGINT (so OPA flushes its decision log and
// the gate drains its Chron queue) and waits for it.
func (p *proc) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// httpClient is for the checks around the load, never for the load itself.
var httpClient = &http.Client{Timeout: 10 * time.Second}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
