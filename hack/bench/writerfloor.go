package main

// bench writer-floor is the gate's latency with everything but Chron taken
// away: the gate's writer, as the gate opens and keys it, offered records
// at a fixed rate from inside one process. No HTTP, no decision, no load
// generator sharing the cores. A decision's latency at a rate cannot be
// lower than a record's here, so this is the floor under the gate's p99
// (docs/benchmarks.md, "The gate's latency and PostgreSQL's WAL").

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/pgtest"
)

func writerFloor(args []string) error {
	fs := flag.NewFlagSet("writer-floor", flag.ExitOnError)
	rates := fs.String("rates", "1000,5000,10000", "records/s offered, one run each, comma-separated")
	duration := fs.Duration("duration", 20*time.Second, "length of each run")
	fill := fs.Duration("fill", 10*time.Second, "closed-loop writing before the runs, so that they write into recycled WAL segments after a CHECKPOINT, as the gate's latency runs do")
	pgSet := fs.String("pg-settings", "", "extra PostgreSQL settings, as for bench run")
	maxBatch := fs.Int("max-batch", 0, "the writer's rows per transaction (0: the gate's default)")
	maxWait := fs.Duration("max-wait", 0, "the writer's wait for company (0: the gate's adaptive linger; 1ns: none)")
	streams := fs.Int("streams", 1, "writers (each its own stream and connection) the records are dealt to in turn")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rs []int
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 || r > 1_000_000 {
			return fmt.Errorf("-rates: %q is not a rate between 1 and 1000000", s)
		}
		rs = append(rs, r)
	}
	if *streams < 1 || *streams > 16 {
		return fmt.Errorf("-streams: %d is not between 1 and 16", *streams)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	server.TuneGC() // as the gate command does

	pg, err := pgtest.StartWith(ctx, pgtest.Options{Settings: pgSettings(*pgSet)})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL (make bench installs it via hack/ensure-deps.sh): %w", err)
	}
	defer pg.Stop()
	dir, err := os.MkdirTemp("", "claiim-writer-floor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := prepareChron(ctx, pg.URL, filepath.Join(dir, "gate-keys"))
	if err != nil {
		return err
	}
	pool, err := chron.OpenPool(ctx, db.gate, chron.PoolOptions{Application: "claiim-gate",
		StatementTimeout: chron.ComponentStatementTimeout, IdleInTxTimeout: chron.ComponentIdleInTxTimeout})
	if err != nil {
		return err
	}
	defer pool.Close()
	key := db.keys.ChainKey()
	ws := make(floorWriters, *streams)
	for i := range ws {
		if ws[i], err = chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: floorStream(i), Key: &key,
			MaxBatch: *maxBatch, MaxWait: *maxWait}); err != nil {
			return err
		}
		defer ws[i].Close()
	}

	var wrote atomic.Int64
	if *fill > 0 {
		fctx, cancel := context.WithTimeout(ctx, *fill)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 64 {
			wg.Go(func() {
				for fctx.Err() == nil {
					if err := ws.write(ctx, wrote.Add(1)); err != nil {
						wrote.Add(-1)
						failed.Add(1)
						return
					}
				}
			})
		}
		wg.Wait()
		cancel()
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("fill: %d records were not stored", n)
		}
		fmt.Printf("  fill: %d records in %s, closed loop (64 writers)\n", wrote.Load(), *fill)
	}
	for _, rate := range rs {
		settleWAL(ctx, db.owner)
		before := ws.stats()
		lat, svc, errs := openLoopWrites(ctx, ws, rate, *duration, &wrote)
		after := ws.stats()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batches := after.BatchesCommitted - before.BatchesCommitted
		rows := after.RowsCommitted - before.RowsCommitted
		fmt.Printf("  open loop %6d/s offered: %s  errors %d; %d commits, %.1f rows each\n",
			rate, latencyLine(lat), errs, batches, float64(rows)/float64(max(batches, 1)))
		fmt.Printf("  %23s from each Write call: %s\n", "", latencyLine(svc))
		if errs > 0 {
			return fmt.Errorf("%d records at %d/s were not stored", errs, rate)
		}
	}
	var n int64
	for i := range ws {
		c, err := countRows(ctx, db.owner, floorStream(i))
		if err != nil {
			return err
		}
		n += c
	}
	if n != wrote.Load() {
		return fmt.Errorf("%d records answered as stored, %d rows in Chron", wrote.Load(), n)
	}
	_, err = db.verify(ctx, nil)
	return err
}

// openLoopWrites offers rate records a second for d, each from its own
// goroutine as each gate request is, and times each from when it was due,
// so a late start counts against the latency, not for it; and from its
// Write call, without this process's own delays in starting it.
func openLoopWrites(ctx context.Context, ws floorWriters, rate int, d time.Duration, wrote *atomic.Int64) (lat, svc []time.Duration, errs int64) {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	lat, svc = make([]time.Duration, n), make([]time.Duration, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			called := time.Now()
			if err := ws.write(ctx, wrote.Add(1)); err != nil {
				wrote.Add(-1)
				failed.Add(1)
			}
			lat[i], svc[i] = time.Since(due), time.Since(called)
		})
	}
	wg.Wait()
	return lat, svc, failed.Load()
}

// floorWriters deal record i to writer i mod their number.
type floorWriters []*chron.Writer

func (ws floorWriters) write(ctx context.Context, i int64) error {
	_, err := ws[int(i%int64(len(ws)))].Write(ctx, floorRecord(i))
	return err
}

// stats sums what the writers committed.
func (ws floorWriters) stats() (s chron.WriterStats) {
	for _, w := range ws {
		st := w.Stats()
		s.BatchesCommitted += st.BatchesCommitted
		s.RowsCommitted += st.RowsCommitted
	}
	return s
}

func floorStream(i int) string {
	if i == 0 {
		return "gate/writer-floor"
	}
	return fmt.Sprintf("gate/writer-floor-%d", i)
}

func latencyLine(lat []time.Duration) string {
	s := slices.Clone(lat)
	slices.Sort(s)
	if len(s) == 0 {
		return "no records"
	}
	p := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))].Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %-8s p90 %-8s p99 %-8s p99.9 %-8s max %-8s", p(0.5), p(0.9), p(0.99), p(0.999), s[len(s)-1].Round(10*time.Microsecond))
}

// floorRecord is a decision of the small fixture's size: the columns the
// gate fills, one policy, a two-key context.
func floorRecord(i int64) *chron.Record {
	return &chron.Record{
		Kind:           chron.KindDecision,
		AgentName:      "release-bot",
		AgentNamespace: "team-payments",
		AgentUID:       "0f6a2d9c-1111-4000-8000-00000000f100",
		Org:            "payments",
		Action:         "k8s:rollout:payments-api",
		Context:        map[string]any{"cluster": "eu-west-2", "n": i},
		Outcome:        chron.OutcomeAllow,
		Reason:         "OWN_AIORG",
		Message:        "allowed: the action is within the agent's own AIOrg",
		Anchor:         "lead@payments.example",
		SkillVersionID: "release-bot-v4",
		SkillDigest:    "sha256:41d7",
		Policies:       []chron.PolicyMatch{{Name: "payments-rollouts", Version: 7, Rule: "k8s:rollout:*", Effect: "Allow"}},
		SkillRules:     []string{"allowed:k8s:rollout:*"},
		Replica:        "writer-floor",
		RequestID:      "floor-" + strconv.FormatInt(i, 10),
	}
}
