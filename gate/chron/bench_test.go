package chron

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	benchOnce sync.Once
	benchPool *pgxpool.Pool
	gateOnce  sync.Once
	gatePool  *pgxpool.Pool
)

// benchGateDB is a database written as the gate writes it: logged in as
// a member of chron_gate_writer, under row-level security (which refuses
// COPY, so batches go in as one INSERT).
func benchGateDB(b *testing.B) *pgxpool.Pool {
	owner := benchDB(b)
	gateOnce.Do(func() {
		ctx := context.Background()
		login := Login{Group: GateWriterRole, Name: "gate_bench_" + strings.ToLower(randomSuffix()), Password: "bench-password-" + randomSuffix()}
		if err := SetupLogins(ctx, owner, []Login{login}); err != nil {
			b.Fatal(err)
		}
		cfg := owner.Config().Copy()
		cfg.ConnConfig.User = login.Name
		var err error
		if gatePool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	})
	if gatePool == nil {
		b.Fatal("benchmark database unavailable")
	}
	return gatePool
}

// benchDB is one database for all benchmarks; each run writes its own stream.
func benchDB(b *testing.B) *pgxpool.Pool {
	s := server(b)
	benchOnce.Do(func() {
		ctx := context.Background()
		url, err := s.CreateDatabase(ctx, "chron_bench_"+randomSuffix())
		if err != nil {
			b.Fatal(err)
		}
		if benchPool, err = pgxpool.New(ctx, url); err != nil {
			b.Fatal(err)
		}
		if err := Migrate(ctx, benchPool); err != nil {
			b.Fatal(err)
		}
	})
	if benchPool == nil {
		b.Fatal("benchmark database unavailable")
	}
	return benchPool
}

// BenchmarkWriterParallel is many gate requests writing at once through one
// writer: ns/op is the amortized cost of a committed row. role=gate is
// the gate's own path, the figure docs/benchmarks.md quotes: its role
// under row-level security, hash format v2 (HMAC-SHA256 under a chain
// key). The owner's runs (COPY, formats v1 and v2) are for comparison.
func BenchmarkWriterParallel(b *testing.B) {
	b.Run("role=gate", func(b *testing.B) {
		k := benchKey(b)
		benchParallelOn(b, benchGateDB(b), WriterOptions{Key: &k}, 64)
	})

	b.Run("role=owner/format=v1", func(b *testing.B) { benchParallel(b, WriterOptions{}) })
	b.Run("role=owner/format=v2", func(b *testing.B) {
		k := benchKey(b)
		benchParallel(b, WriterOptions{Key: &k})
	})
}

func benchKey(b *testing.B) ChainKey {
	keys, err := NewKeySet(ScopeGate, false)
	if err != nil {
		b.Fatal(err)
	}
	return keys.ChainKey()
}

// BenchmarkChainHash is the hash of one row alone, as the writer's
// goroutine computes it: what format v2 adds to each row's CPU cost.
func BenchmarkChainHash(b *testing.B) {
	p, err := prepare(decision(1))
	if err != nil {
		b.Fatal(err)
	}
	k := benchKey(b)
	for name, key := range map[string]*ChainKey{"format=v1": nil, "format=v2": &k} {
		b.Run(name, func(b *testing.B) {
			c := newChainer("gate/0", key)
			var buf []byte
			b.ReportAllocs()
			for i := range b.N {
				_, buf = c.hash(buf, GenesisHash, int64(i), p.body)
			}
		})
	}
}

// BenchmarkInsertMethod compares COPY with a multi-row INSERT from unnest,
// end to end through the writer and for single transactions of fixed size.
func BenchmarkInsertMethod(b *testing.B) {
	for _, m := range methods {
		b.Run(m.String()+"/parallel", func(b *testing.B) { benchParallel(b, WriterOptions{method: m}) })
		for _, size := range []int{16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", m, size), func(b *testing.B) { benchBatch(b, m, size) })
		}
	}
}

// BenchmarkBatchWait compares waiting MaxWait for company with taking
// what has queued while the previous commit ran (MaxWait 0, the default),
// at a light and a heavy load.
func BenchmarkBatchWait(b *testing.B) {
	for _, par := range []int{2, 64} {
		for _, wait := range []time.Duration{2 * time.Millisecond, 500 * time.Microsecond, 0} {
			b.Run(fmt.Sprintf("writers=%d/wait=%s", 2*par, wait), func(b *testing.B) {
				benchParallelN(b, WriterOptions{MaxWait: wait}, par)
			})
		}
	}
}

func benchParallel(b *testing.B, opts WriterOptions) { benchParallelN(b, opts, 64) }

func benchParallelN(b *testing.B, opts WriterOptions, par int) {
	benchParallelOn(b, benchDB(b), opts, par)
}

func benchParallelOn(b *testing.B, pool *pgxpool.Pool, opts WriterOptions, par int) {
	// The collector as the gate runs it (server.TuneGC: GOGC=400, which
	// this package cannot import): at the test binary's default of 100 it
	// takes a third of the Go side's CPU here and the writer's figure
	// would not be the gate's.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	ctx := context.Background()
	opts.Stream = "gate/bench-" + randomSuffix()
	w, err := NewWriter(ctx, pool, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	before := w.Stats()
	b.SetParallelism(par) // 64: 128 concurrent writers on 2 CPUs, like a busy gate
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := w.Write(ctx, decision(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := w.Stats()
	rows, batches := st.RowsCommitted-before.RowsCommitted, st.BatchesCommitted-before.BatchesCommitted
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	if batches > 0 {
		b.ReportMetric(float64(rows)/float64(batches), "rows/commit")
	}
}

// benchBatch times one transaction of size rows (ns/op is per transaction).
func benchBatch(b *testing.B, m insertMethod, size int) {
	pool := benchDB(b)
	ctx := context.Background()
	w := &Writer{pool: pool, opts: WriterOptions{Stream: "bench-" + randomSuffix(), method: m, CommitTimeout: time.Minute}}
	w.chain = newChainer(w.opts.Stream, nil)
	if err := w.reload(ctx); err != nil {
		b.Fatal(err)
	}
	batch := make([]*pending, size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for j := range batch {
			p, err := prepare(decision(j))
			if err != nil {
				b.Fatal(err)
			}
			batch[j] = &pending{p: p, done: make(chan struct{})}
		}
		b.StartTimer()
		if _, err := w.commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
}
