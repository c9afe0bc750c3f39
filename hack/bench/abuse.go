package main

// `bench abuse`: authenticated agents at half the gate's clean peak while
// junk arrives at ten times their rate, a quarter of it carrying the
// agents' own token ids with wrong secrets. The agents' answers must keep
// 95% of their clean throughput, none may be OVERLOADED or RATE_LIMITED,
// and the junk must cost Chron a row per address and reason per interval,
// not one per request.

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/gate/token"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/hack/bench/load"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// abuseVerdict is what `bench abuse` holds the gate to.
const (
	minKeptThroughput = 0.95
	share             = 0.5 // of the clean peak, offered by the agents
)

func abuse(args []string) error {
	fs := flag.NewFlagSet("abuse", flag.ContinueOnError)
	sizeName := fs.String("size", "1k", "fixture size: small, 1k or 10k")
	seed := fs.Uint64("seed", 1, "fixture seed")
	duration := fs.Duration("duration", 5*time.Second, "measured time of each step")
	warmup := fs.Duration("warmup", time.Second, "warmup of each step")
	conns := fs.Int("conns", 64, "the agents' connections")
	junkConns := fs.Int("junk-conns", 64, "the junk's connections")
	factor := fs.Float64("junk-factor", 10, "junk offered, as a multiple of the agents' rate")
	tarpit := fs.Duration("tarpit", 0, "the gate's hold of a RATE_LIMITED answer (0: its default, 1s; -1ns: none, so every junk request costs the gate its full answer)")
	pin := fs.Bool("pin", true, "pin the load generator to CPU 0, the gate and PostgreSQL to CPU 1 (taskset)")
	out := fs.String("out", "", "directory for the gate's log (default: a temp dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := fixture.SizeNamed(*sizeName)
	if err != nil {
		return err
	}
	c := config{seed: *seed, duration: *duration, warmup: *warmup, out: *out}
	if *pin && os.Getenv("BENCH_PINNED") == "" && runtime.NumCPU() >= 2 && exec.Command("taskset", "-c", "1", "true").Run() == nil {
		return rerunPinned("abuse", args)
	}
	if os.Getenv("BENCH_PINNED") != "" {
		c.loadCPU, c.srvCPU = "0", "1"
	}
	if c.out == "" {
		if c.out, err = os.MkdirTemp("", "claiim-bench-abuse-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pg, err := pgtest.StartWith(ctx, pgtest.Options{CPUs: c.srvCPU})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer pg.Stop()
	db, err := c.newChronDB(ctx, pg, c.out, "abuse")
	if err != nil {
		return err
	}
	const stream = "gate/bench-abuse"
	p, err := c.start(ctx, c.out, "gate-abuse", true, append([]string{"serve-gate", "-seed", fmt.Sprint(c.seed), "-size", size.Name,
		"-stream", stream, "-tarpit", tarpit.String()}, db.gateArgs()...)...)
	if err != nil {
		return err
	}
	defer p.stop()

	f := fixture.Generate(c.seed, size)
	agents, want, junk := abuseRequests(f)
	fmt.Printf("gate under abuse — %s fixture, load on CPU %s, gate and PostgreSQL on CPU %s; %s per step after %s warmup; log in %s\n",
		size.Name, cmp.Or(c.loadCPU, "any"), cmp.Or(c.srvCPU, "any"), c.duration, c.warmup, p.log)

	var agentBad, agentShed, agentLimited, junk401, junk429 atomic.Int64
	checkAgent := func(i, status int, body []byte) error {
		switch {
		case strings.Contains(string(body), `"reason":"OVERLOADED"`):
			agentShed.Add(1)
		case strings.Contains(string(body), `"reason":"RATE_LIMITED"`):
			agentLimited.Add(1)
		}
		if err := statusIs(status, gateStatus(want[i%len(want)])); err != nil {
			agentBad.Add(1)
			return err
		}
		return nil
	}
	checkJunk := func(_, status int, body []byte) error {
		switch {
		case status == http.StatusUnauthorized:
			junk401.Add(1)
		case status == http.StatusTooManyRequests && strings.Contains(string(body), `"reason":"RATE_LIMITED"`):
			junk429.Add(1)
		default:
			return fmt.Errorf("junk answered HTTP %d: %.200s", status, body)
		}
		return nil
	}
	opts := func(n int, rate float64, check func(int, int, []byte) error) load.Options {
		return load.Options{Conns: n, Duration: c.duration, Warmup: c.warmup, Rate: rate, Check: check}
	}

	peak, err := load.Run(ctx, p.addr, agents, opts(*conns, 0, checkAgent))
	if err != nil {
		return err
	}
	fmt.Printf("  %-34s %s\n", "clean peak (closed loop)", load.Format(peak))
	rate := share * peak.PerSecond
	clean, err := load.Run(ctx, p.addr, agents, opts(*conns, rate, checkAgent))
	if err != nil {
		return err
	}
	fmt.Printf("  %-34s %s\n", fmt.Sprintf("agents at %.0f%% of peak, no junk", 100*share), load.Format(clean))

	before := agentBad.Load()
	var mixed, junkRes load.Result
	var junkErr error
	var wg sync.WaitGroup
	wg.Go(func() { junkRes, junkErr = load.Run(ctx, p.addr, junk, opts(*junkConns, *factor*rate, checkJunk)) })
	mixed, err = load.Run(ctx, p.addr, agents, opts(*conns, rate, checkAgent))
	wg.Wait()
	if err = errors.Join(err, junkErr); err != nil {
		return err
	}
	fmt.Printf("  %-34s %s\n", "agents, under junk", load.Format(mixed))
	// Junk held by the tarpit mostly answers after the window it was
	// meant for, so it is reported by what the gate answered in all.
	junkTime := (c.warmup + c.duration).Seconds()
	fmt.Printf("  %-34s offered %.0f/s on %d connections; the gate answered %d (%.0f/s)\n", fmt.Sprintf("junk at %.0f× the agents' rate", *factor),
		junkRes.Offered, *junkConns, junkRes.Answered, float64(junkRes.Answered)/junkTime)

	if err := postEmpty("http://" + p.addr + "/bench/flush"); err != nil {
		return err
	}
	rows, counted, err := refusedRows(ctx, db.owner, stream)
	if err != nil {
		return err
	}
	p.stop()
	if _, err := db.verify(ctx, nil); err != nil {
		return err
	}
	kept := mixed.PerSecond / clean.PerSecond
	fmt.Printf("\n  agents kept %.1f%% of their clean throughput (%.0f of %.0f answers/s; %.0f offered)\n", 100*kept, mixed.PerSecond, clean.PerSecond, rate)
	fmt.Printf("  agents' answers: %d OVERLOADED, %d RATE_LIMITED, %d other than the engine's (under junk)\n",
		agentShed.Load(), agentLimited.Load(), agentBad.Load()-before)
	fmt.Printf("  junk in the measured window: %d × 401 UNAUTHENTICATED, %d × 429 RATE_LIMITED; Chron holds %d auth.refused rows counting %d requests (all steps)\n",
		junk401.Load(), junk429.Load(), rows, counted)
	var fails []string
	if kept < minKeptThroughput {
		fails = append(fails, fmt.Sprintf("agents kept %.1f%% < %.0f%%", 100*kept, 100*minKeptThroughput))
	}
	if agentShed.Load() > 0 || agentLimited.Load() > 0 || agentBad.Load() > 0 {
		fails = append(fails, "an agent got an answer other than the engine's")
	}
	if junkRes.Errors > 0 {
		fails = append(fails, fmt.Sprintf("%d junk answers were neither 401 nor 429 RATE_LIMITED: %v", junkRes.Errors, junkRes.ErrorSamples))
	}
	if len(fails) > 0 {
		return fmt.Errorf("abuse: %s", strings.Join(fails, "; "))
	}
	fmt.Println("  met: ≥ 95% kept, 0 OVERLOADED and 0 RATE_LIMITED for the agents, including those whose token ids the junk carried")
	return nil
}

// abuseRequests splits the mix: the agents' requests (every one with its
// own token) and junk built on the same bodies, in four kinds: a real
// agent's token id with a wrong secret (each agent of the mix in turn),
// an id nobody holds, no token, a malformed token.
func abuseRequests(f *fixture.Fixture) (agents []load.Req, want []decide.Decision, junk []load.Req) {
	snap := decide.Build(f.Inputs)
	gate, _ := requests(f)
	var ids []string
	seen := map[string]bool{}
	for i := range f.Requests {
		r := &f.Requests[i]
		d := f.Decide(snap, r)
		if d.Reason == decide.ReasonUnauthenticated {
			continue
		}
		agents, want = append(agents, gate[i]), append(want, d)
		if id, _ := token.ID(r.Token); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for i := range 4096 {
		q := gate[i%len(gate)]
		h := http.Header{"Content-Type": {"application/json"}}
		switch i % 4 {
		case 0:
			h.Set("Authorization", "Bearer clm_"+ids[(i/4)%len(ids)]+"_"+secret())
		case 1:
			var id [8]byte
			_, _ = rand.Read(id[:])
			h.Set("Authorization", "Bearer clm_"+hex.EncodeToString(id[:])+"_"+secret())
		case 3:
			h.Set("Authorization", "Bearer not-a-token-"+strconv.Itoa(i))
		}
		junk = append(junk, load.Req{Method: q.Method, Path: q.Path, Body: q.Body, Header: h})
	}
	return agents, want, junk
}

func secret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// refusedRows counts the auth.refused rows of the stream and the requests
// they count.
func refusedRows(ctx context.Context, url, stream string) (rows, counted int64, err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*), coalesce(sum((context->>'count')::bigint), 0) FROM chron_records
		WHERE stream = $1 AND kind = 'auth.refused'`, stream).Scan(&rows, &counted)
	return rows, counted, err
}

func postEmpty(url string) error {
	resp, err := httpClient.Post(url, "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// rerunPinned runs this command again under taskset on CPU 0, so every
// thread of the load generator stays there.
func rerunPinned(cmdName string, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", self, cmdName}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	cmd.Env = append(os.Environ(), "BENCH_PINNED="+strconv.Itoa(runtime.NumCPU()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
