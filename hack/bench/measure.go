package main

// One fixture size: every target started, checked, and measured at each
// connection count (closed loop) and offered rate (open loop).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/hack/bench/load"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// point is one measurement: a target at a connection count.
type point struct {
	Target string        `json:"target"`
	Conns  int           `json:"conns"`
	Rate   float64       `json:"decisions_per_s"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Errors int64         `json:"errors"`
	Rounds []float64     `json:"rounds_decisions_per_s"`
	CPU    cpuUse        `json:"cpu"` // the median round's
	// PerServer splits Rate between the servers the load was spread over.
	PerServer []float64 `json:"per_server_decisions_per_s,omitempty"`

	answered int64   // responses in all rounds, warmup included
	offered  float64 // open loop: the rate offered
}

// sizeResult is everything measured on one fixture.
type sizeResult struct {
	Placement string  `json:"placement"`
	Mix       string  `json:"mix"` // own: the size's own mix; seed: the seed's requests (the small fixture's)
	Size      string  `json:"size"`
	Agents    int     `json:"agents"`
	Pols      int     `json:"policies"`
	Points    []point `json:"points"`

	// Chron: rows committed vs decisions the gate answered (all runs).
	GateAnswered int64   `json:"gate_answered"`
	ChronRows    int64   `json:"chron_rows"`
	GateShed     int64   `json:"gate_shed"`
	GateRefused  int64   `json:"gate_refused"` // unauthenticated: counted in auth.refused rows, not decision rows
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
	res := sizeResult{Size: size.Name, Agents: size.Agents, Pols: size.Policies, Mix: c.mix}
	f := fixture.Generate(c.seed, size)
	if c.mix == mixSeed {
		// The seed's agents are in every size, with the same tokens.
		f.Requests = fixture.Generate(c.seed, fixture.Sizes[0]).Requests
	}
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
	fmt.Printf("\n== %s: %d agents, %d policies, %d distinct requests (%s mix) ==\n", size.Name, size.Agents, size.Policies, len(f.Requests), c.mix)

	// The sink of OPA's decision log runs with the load generator, so
	// OPA's own CPU is all the server side gets.
	sink, err := c.start(ctx, dir, "sink", false, "serve-noop")
	if err != nil {
		return res, err
	}
	defer sink.stop()

	var db *chronDB // the gate's database
	for _, t := range []string{tNoop, tOPA, tOPAPlain, tOPALog, tGate} {
		if !c.targets[t] || t == tOPAPlain && size.Name != fixture.Sizes[0].Name {
			continue
		}
		var p *proc
		var reqs []load.Req
		var check func(int, int, []byte) error
		switch t {
		case tNoop:
			p, err = c.start(ctx, dir, "noop", true, "serve-noop")
			reqs, check = gateReqs, func(_, status int, _ []byte) error { return statusIs(status, 200) }
		case tOPA, tOPAPlain, tOPALog:
			p, err = c.startOPA(ctx, dir, t == tOPAPlain, t == tOPALog, sink.addr)
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
			if db, err = c.newChronDB(ctx, pg, dir, size.Name); err != nil {
				return res, err
			}
			args := append([]string{"serve-gate", "-seed", fmt.Sprint(c.seed), "-size", size.Name, "-stream", "gate/bench-" + size.Name, "-tarpit", c.tarpit.String()}, db.gateArgs()...)
			if c.maxBatch > 0 {
				args = append(args, "-max-batch", fmt.Sprint(c.maxBatch))
			}
			if c.maxWait != 0 {
				args = append(args, "-max-wait", c.maxWait.String())
			}
			p, err = c.start(ctx, dir, "gate", true, args...)
			reqs, check = gateReqs, func(i, status int, _ []byte) error {
				return gateAnswered(want[i%len(want)], status)
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
		m := cpuMeter{servers: []int{p.cmd.Process.Pid}}
		if t == tGate {
			m.postmaster = c.postmaster
		}
		for _, n := range c.conns {
			pt, err := c.measure(ctx, t, []string{p.addr}, m, reqs, check, n, 0)
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
			if t == tGate {
				settleWAL(ctx, db.owner)
			}
			pt, err := c.measure(ctx, t, []string{p.addr}, m, reqs, check, 64, rate)
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
			res.GateAnswered, res.GateShed, res.GateRefused = st.Answered, st.Writer.Overloaded, st.Refused
			if st.Writer.BatchesCommitted > 0 {
				res.AvgBatch = float64(st.Writer.RowsCommitted) / float64(st.Writer.BatchesCommitted)
			}
			if res.ChronRows, err = countRows(ctx, db.owner, st.Stream); err != nil {
				p.stop()
				return res, err
			}
			if decided := res.GateAnswered - res.GateShed - res.GateRefused; res.ChronRows != decided {
				p.stop()
				return res, fmt.Errorf("the gate answered %d decisions but Chron holds %d decision rows", decided, res.ChronRows)
			}
			if last {
				if res.Overload, err = c.overload(ctx, dir, size, db, gateReqs, want); err != nil {
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
			p.stop() // its last rows (the refusals' counts) flushed
			if _, err := db.verify(ctx, nil); err != nil {
				return res, err
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

// round is one run of a point and the CPU it cost.
type round struct {
	load.Result
	cpu cpuUse
}

// measure runs one point: c.rounds rounds, the median by throughput kept.
// The CPU time of the server's processes (and PostgreSQL's, in m) is read
// as the measured window opens and closes.
func (c *config) measure(ctx context.Context, t string, addrs []string, m cpuMeter, reqs []load.Req, check func(int, int, []byte) error, conns int, rate float64) (point, error) {
	var results []round
	for range c.rounds {
		var before, after cpuSample
		var cpuErr error
		window := func(open bool) {
			s, err := m.read()
			cpuErr = cmp.Or(cpuErr, err)
			if open {
				before = s
			} else {
				after = s
			}
		}
		r, err := load.Run(ctx, addrs[0], reqs, load.Options{Conns: conns, Duration: c.duration, Warmup: c.warmup, Rate: rate, Check: check,
			Window: window, Addrs: addrs})
		if err = cmp.Or(err, cpuErr); err != nil {
			return point{}, err
		}
		results = append(results, round{r, cpuPer(before, after, r.Requests, c.duration)})
	}
	byRate := slices.Clone(results)
	slices.SortFunc(byRate, func(a, b round) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
	med := byRate[len(byRate)/2]
	m1 := med.Result
	pt := point{Target: t, Conns: conns, Rate: m1.PerSecond, P50: m1.P50, P99: m1.P99, CPU: med.cpu, offered: rate}
	if len(addrs) > 1 && m1.Elapsed > 0 {
		for _, a := range addrs {
			pt.PerServer = append(pt.PerServer, float64(m1.PerAddr[a])/m1.Elapsed.Seconds())
		}
	}
	for _, r := range results {
		pt.Errors += r.Errors
		pt.Rounds = append(pt.Rounds, r.PerSecond)
		pt.answered += r.Answered
	}
	mode := fmt.Sprintf("%2d conns", conns)
	if rate > 0 {
		mode = fmt.Sprintf("open loop %.0f/s offered", rate)
	}
	fmt.Printf("  %-26s %-24s %s; %s\n", t, mode, load.Format(m1), pt.CPU)
	if pt.Errors > 0 {
		fmt.Printf("    errors: %v\n", m1.ErrorSamples)
	}
	return pt, nil
}
