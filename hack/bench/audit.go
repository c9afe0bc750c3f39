package main

// Chron's side of the comparison: rows counted against answers, a gate
// driven past its queue, and PostgreSQL stopped under a running gate.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/hack/bench/load"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// newChronDB is a fresh database for one size's gate, set up as
// production sets it up (chronsetup.go).
func (c *config) newChronDB(ctx context.Context, pg *pgtest.Server, dir, name string) (*chronDB, error) {
	url, err := pg.CreateDatabase(ctx, fmt.Sprintf("bench_%s_%d", strings.ReplaceAll(name, "-", "_"), time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	return prepareChron(ctx, url, filepath.Join(dir, "gate-keys"))
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

// walSettings are the bench PostgreSQL's WAL settings, as a server that
// takes Chron's write rate is set (docs/benchmarks.md, "PostgreSQL for
// Chron"): a new WAL segment is zero-filled and synced while every commit
// waits (110-250 ms per 16 MB segment on the bench machine), so segments
// must be recycled, not created, and checkpoints must be rare.
var walSettings = []string{"max_wal_size=8GB", "min_wal_size=2GB", "checkpoint_timeout=15min"}

// pgSettings is walSettings, then -pg-settings, which override them.
func pgSettings(flag string) []string {
	s := slices.Clone(walSettings)
	if flag != "" {
		s = append(s, strings.Split(flag, ",")...)
	}
	return s
}

// settleWAL runs a CHECKPOINT before a latency run, so the run writes into
// WAL segments recycled from the earlier runs, as on a server that has
// been up for a while, rather than into new ones a fresh cluster creates.
// It needs a superuser or pg_checkpoint; without, the run goes on and says so.
func settleWAL(ctx context.Context, ownerURL string) {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err == nil {
		_, err = conn.Exec(ctx, "CHECKPOINT")
		_ = conn.Close(ctx)
	}
	if err != nil {
		fmt.Printf("  note: no CHECKPOINT before the latency run (%v): it may write into new WAL segments\n", err)
	}
}

// overloadResult is a gate with a tiny Chron queue driven past it.
type overloadResult struct {
	Conns     int   `json:"conns"`
	QueueSize int   `json:"queue_size"`
	Answered  int64 `json:"answered"`
	Shed      int64 `json:"shed"`    // answered 429 DENY OVERLOADED
	Refused   int64 `json:"refused"` // unauthenticated (401, 429 RATE_LIMITED): no decision rows
	Rows      int64 `json:"rows"`
}

// overload starts a second gate whose Chron queue holds 16 records and
// drives it with 256 connections: what doesn't fit must be answered DENY
// OVERLOADED (429), and every other answer must have its row.
func (c *config) overload(ctx context.Context, dir string, size fixture.Size, db *chronDB, reqs []load.Req, want []decide.Decision) (*overloadResult, error) {
	o := &overloadResult{Conns: 256, QueueSize: 16}
	stream := "gate/bench-" + size.Name + "-overload"
	p, err := c.start(ctx, dir, "gate-overload", true, append([]string{"serve-gate", "-seed", fmt.Sprint(c.seed), "-size", size.Name,
		"-stream", stream, "-queue-size", fmt.Sprint(o.QueueSize), "-tarpit", c.tarpit.String()}, db.gateArgs()...)...)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	r, err := load.Run(ctx, p.addr, reqs, load.Options{Conns: o.Conns, Duration: c.duration, Warmup: c.warmup,
		Check: func(i, status int, _ []byte) error {
			if status == http.StatusTooManyRequests {
				return nil // OVERLOADED, or RATE_LIMITED for the mix's unknown tokens
			}
			return gateAnswered(want[i%len(want)], status)
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
	o.Answered, o.Shed, o.Refused = st.Answered, st.Writer.Overloaded, st.Refused
	if o.Rows, err = countRows(ctx, db.owner, stream); err != nil {
		return nil, err
	}
	fmt.Printf("  %-26s %-24s %s; %d answered, %d shed as 429 OVERLOADED, %d unauthenticated, %d rows\n", "gate, Chron queue of 16", "256 conns", load.Format(r), o.Answered, o.Shed, o.Refused, o.Rows)
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
