package chron

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// heldStream writes a stream's rows in transactions it holds open before
// committing: a writer whose rows commit late, after rows of other
// streams that started later. Its rows chain as the Writer's do.
type heldStream struct {
	stream string
	seq    int64
	prev   string
	chain  chainer
}

func newHeldStream(stream string) *heldStream {
	return &heldStream{stream: stream, prev: GenesisHash, chain: newChainer(stream, nil)}
}

// begin inserts n rows in a transaction it leaves open. Their time is
// now, before the commit, as a writer's is.
func (h *heldStream) begin(t *testing.T, pool *pgxpool.Pool, n int) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var live []*pending
	var buf []byte
	for i := range n {
		r := decision(i)
		r.Time = time.Now()
		p, err := prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		h.seq++
		var hash string
		hash, buf = h.chain.hash(buf, h.prev, h.seq, p.body)
		live = append(live, &pending{p: p, row: Row{Record: p.rec, Stream: h.stream, Seq: h.seq, PrevHash: h.prev,
			Hash: hash, Format: h.chain.format}})
		h.prev = hash
	}
	var params batchParams
	if stored, _, err := params.execBatch(ctx, tx.Conn(), "held", unnestSQL, live); err != nil || stored != int64(n) {
		t.Fatalf("held insert: %d rows, %v", stored, err)
	}
	return tx
}

// reader collects what one reader sees, failing on a row seen twice.
type reader struct {
	mu   sync.Mutex
	seen map[string]int
	dups []string
}

func (r *reader) add(rows []Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		if r.seen[row.ID]++; r.seen[row.ID] > 1 {
			r.dups = append(r.dups, row.ID)
		}
	}
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// TestCommitOrderUnderConcurrentStreams: two writers append to their
// streams without pause while a third holds its transactions open for a
// while before committing them, so its rows commit after rows that began
// later. Three readers read meanwhile: one pages newest first and then
// tails from that listing's Tail, one pages oldest first and keeps tailing
// with the same cursor, one tails from the horizon taken before any row.
// Each sees every row of the table exactly once.
func TestCommitOrderUnderConcurrentStreams(t *testing.T) {
	pool, _ := newDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start, err := Horizon(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}

	var writers sync.WaitGroup
	stop := make(chan struct{})
	for _, s := range []string{"gate/a", "gate/b"} {
		w := newWriter(t, pool, WriterOptions{Stream: s})
		for range 4 {
			writers.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := w.Write(ctx, decision(i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	held := newHeldStream("manager/slow")
	writers.Go(func() {
		for range 12 {
			tx := held.begin(t, pool, 1+rand.IntN(3))
			time.Sleep(time.Duration(20+rand.IntN(150)) * time.Millisecond)
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})

	tail := func(r *reader, cursor string) {
		for ctx.Err() == nil {
			p, err := ListPage(ctx, pool, Filter{OldestFirst: true, After: cursor, Limit: 50})
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			r.add(p.Rows)
			cursor = p.Tail
			if p.Next == "" {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	newestThenTail, oldest, fromStart := &reader{seen: map[string]int{}}, &reader{seen: map[string]int{}}, &reader{seen: map[string]int{}}
	var readers sync.WaitGroup
	readers.Go(func() { tail(oldest, "") })
	readers.Go(func() { tail(fromStart, start) })
	readers.Go(func() {
		time.Sleep(150 * time.Millisecond) // into the writing
		f := Filter{Limit: 25}
		var tailFrom string
		for {
			p, err := ListPage(ctx, pool, f)
			if err != nil {
				t.Error(err)
				return
			}
			if f.After == "" {
				tailFrom = p.Tail
				readers.Go(func() { tail(newestThenTail, tailFrom) })
			}
			newestThenTail.add(p.Rows)
			if p.Next == "" {
				return
			}
			f.After = p.Next
			time.Sleep(2 * time.Millisecond)
		}
	})

	time.Sleep(1500 * time.Millisecond)
	close(stop)
	writers.Wait()
	var total int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records").Scan(&total); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*reader{"newest first, then tail": newestThenTail, "oldest first": oldest, "tail from the start": fromStart} {
		eventually(t, fmt.Sprintf("%s to see all %d rows (has %d)", name, total, r.count()), func() bool { return r.count() >= total })
	}
	time.Sleep(50 * time.Millisecond) // a few more polls: nothing new may appear
	cancel()
	readers.Wait()
	var slowRows int
	for name, r := range map[string]*reader{"newest first, then tail": newestThenTail, "oldest first": oldest, "tail from the start": fromStart} {
		if n := r.count(); n != total || len(r.dups) > 0 {
			t.Errorf("%s saw %d distinct rows of %d, %d twice (%v)", name, n, total, len(r.dups), r.dups)
		}
	}
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM chron_records WHERE stream = 'manager/slow'").Scan(&slowRows); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows, %d of them committed late by the held stream", total, slowRows)
	if rep, err := Verify(context.Background(), pool); err != nil || len(rep.Problems) > 0 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}
