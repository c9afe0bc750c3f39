package chron

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var methods = []insertMethod{insertCopy, insertUnnest, insertSingle}

func TestWriteList(t *testing.T) {
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) { testWriteList(t, m) })
	}
}

func testWriteList(t *testing.T, m insertMethod) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{method: m})

	r := decision(0)
	r.ID = "3f1b8a52-6d0e-4c8e-9a55-1b1f2e3d4c5b"
	r.Time = time.Date(2026, 5, 4, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	r.Actor = "system:serviceaccount:claiim:gate"
	r.Context = map[string]any{"target": "prod-eu-1", "n": 2.5, "tags": []any{"a", "b"}, "m": map[string]any{"x": true}}
	r.Policies = append(r.Policies, PolicyMatch{Name: "eu-only", Version: 7, Rule: "deploy:*", Effect: "Allow"})
	got, err := w.Write(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.PrevHash != GenesisHash || len(got.Hash) != 64 || got.Stream != "gate-0" {
		t.Fatalf("stored row: %+v", got)
	}
	if !got.Time.Equal(r.Time.Truncate(time.Microsecond)) || got.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC microseconds", got.Time, r.Time)
	}
	rows, next, err := List(ctx, pool, Filter{})
	if err != nil || len(rows) != 1 || next != "" {
		t.Fatalf("List: %d rows, next %q, %v", len(rows), next, err)
	}
	// The database stamps committed_at; a COPY batch doesn't read it back.
	if rows[0].CommittedAt.IsZero() || (!got.CommittedAt.IsZero() && !got.CommittedAt.Equal(rows[0].CommittedAt)) {
		t.Errorf("committed_at: listed %v, written %v", rows[0].CommittedAt, got.CommittedAt)
	}
	got.CommittedAt = rows[0].CommittedAt
	if !reflect.DeepEqual(rows[0], got) {
		t.Errorf("List returned\n%#v\nWrite returned\n%#v", rows[0], got)
	}
	want := *r
	want.Time = got.Time
	want.Context = map[string]any{"target": "prod-eu-1", "n": 2.5, "tags": []any{"a", "b"}, "m": map[string]any{"x": true}}
	if !reflect.DeepEqual(rows[0].Record, want) {
		t.Errorf("stored record\n%#v\nwant\n%#v", rows[0].Record, want)
	}
}

// TestHeadCoversEveryAnswer: once Write returns, the writer's head and
// counts include the row (a lease holder checkpoints the head right after
// a write; a CI run published seq 3 after writing 4). Concurrent writers
// make batches, whose first callers wake while the rest are answered.
func TestHeadCoversEveryAnswer(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				row, err := w.Write(ctx, decision(g*100+i))
				if err != nil {
					errs <- err
					return
				}
				if h, ok := w.Head(); !ok || h.Seq < row.Seq {
					errs <- fmt.Errorf("after writing seq %d the head is %+v (%v)", row.Seq, h, ok)
					return
				}
				if st := w.Stats(); st.RowsCommitted < row.Seq {
					errs <- fmt.Errorf("after writing seq %d the writer counts %d rows", row.Seq, st.RowsCommitted)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListFilters(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	// 30 rows: agents a/b/c, orgs x/y, every third ALLOW, actions by parity,
	// times a minute apart, with pairs sharing a time to exercise the id tie-break.
	for i := range 30 {
		r := decision(i)
		r.Time = base.Add(time.Duration(i/2) * time.Minute)
		r.AgentName = string(rune('a' + i%3))
		r.Org = []string{"x", "y"}[i%2]
		r.Action = []string{"deploy:staging", "deploy:production"}[i%2]
		if i%3 == 0 {
			r.Outcome, r.Reason = OutcomeAllow, "OWN_AIORG"
		}
		if i == 29 {
			r.Kind, r.Actor, r.AgentName = "pim.approved", "peer@claiim.io", ""
		}
		if _, err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	count := func(f Filter) int {
		t.Helper()
		rows, _, err := List(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	for name, c := range map[string]struct {
		f    Filter
		want int
	}{
		"all":          {Filter{}, 30},
		"agent":        {Filter{Agent: "a"}, 10},
		"org":          {Filter{Org: "x"}, 15},
		"outcome":      {Filter{Outcome: "allow"}, 10},
		"action":       {Filter{Action: "deploy:production"}, 15},
		"kind":         {Filter{Kind: "pim.approved"}, 1},
		"namespace":    {Filter{Namespace: "agents"}, 30},
		"time range":   {Filter{Since: base.Add(2 * time.Minute), Until: base.Add(5 * time.Minute)}, 6},
		"combined":     {Filter{Agent: "b", Org: "y", Outcome: "DENY", Since: base.Add(3 * time.Minute)}, 4},
		"nothing":      {Filter{Org: "nope"}, 0},
		"limit honors": {Filter{Limit: 7}, 7},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d rows, want %d", name, got, c.want)
		}
	}

	// Pages of 7 cover every row once, newest first: one writer commits in
	// time order, and rows of one time in id order (UUIDv7).
	var all []Row
	f := Filter{Limit: 7}
	pages := 0
	for {
		rows, next, err := List(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, rows...)
		if next == "" {
			break
		}
		f.After = next
	}
	if pages != 5 || len(all) != 30 {
		t.Fatalf("%d pages, %d rows; want 5 pages of 30 rows", pages, len(all))
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool {
		if !all[i].Time.Equal(all[j].Time) {
			return all[i].Time.After(all[j].Time)
		}
		return all[i].ID > all[j].ID
	}) {
		t.Error("pages are not newest first")
	}
	seen := map[string]bool{}
	for _, r := range all {
		if seen[r.ID] {
			t.Errorf("row %s on two pages", r.ID)
		}
		seen[r.ID] = true
	}
	if _, _, err := List(ctx, pool, Filter{After: "garbage"}); err == nil {
		t.Error("List accepted a bad cursor")
	}

	var buf bytes.Buffer
	PrintTable(&buf, all[:3])
	out := buf.String()
	for _, s := range []string{"TIME", "AGENT", "ACTION", "OUTCOME", "ANCHOR", "POLICY VERSION", "SKILL VERSION", "REASON",
		"peer@claiim.io", "deploy:production", "DENY", "admin@claiim.io", "no-prod-deploys@3", "deploy-bot-v1", "POLICY_DENY"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 4 {
		t.Errorf("table has %d lines, want header + 3:\n%s", lines, out)
	}
	t.Logf("\n%s", out)
}

func TestMasking(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	r := decision(0)
	r.Context = map[string]any{"api_key": "x", "nested": map[string]any{"password": "y"}, "target": "eu"}
	row, err := w.Write(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := pool.QueryRow(ctx, "SELECT context::text FROM chron_records WHERE id = $1", row.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal([]byte(stored), &got)
	want := map[string]any{"api_key": "***", "nested": map[string]any{"password": "***"}, "target": "eu"}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(row.Context, want) {
		t.Errorf("stored %s, returned %v; want %v", stored, row.Context, want)
	}
	if r.Context["api_key"] != "x" {
		t.Error("Write changed the caller's context map")
	}
}

func TestGroupCommit(t *testing.T) {
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			pool, _ := newDB(t)
			ctx := context.Background()
			w := newWriter(t, pool, WriterOptions{method: m})
			const n = 200
			rows := make([]Row, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					rows[i], errs[i] = w.Write(ctx, decision(i))
				}()
			}
			close(start)
			wg.Wait()
			seqs := map[int64]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("write %d: %v", i, errs[i])
				}
				seqs[rows[i].Seq] = true
			}
			for s := int64(1); s <= n; s++ {
				if !seqs[s] {
					t.Errorf("seq %d missing", s)
				}
			}
			st := w.Stats()
			t.Logf("%d rows in %d batches", st.RowsCommitted, st.BatchesCommitted)
			if st.RowsCommitted != n || st.BatchesCommitted >= n {
				t.Errorf("stats %+v: want %d rows in fewer than %d batches", st, n, n)
			}
			rep, err := Verify(ctx, pool)
			if err != nil || len(rep.Problems) > 0 || rep.Rows != n {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}

func TestIdempotentRetry(t *testing.T) {
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			pool, _ := newDB(t)
			ctx := context.Background()
			w := newWriter(t, pool, WriterOptions{method: m, MaxWait: 50 * time.Millisecond})
			first, err := w.Write(ctx, decision(1))
			if err != nil {
				t.Fatal(err)
			}
			// A retry alone, and a retry in a batch with new rows and with a
			// second copy of itself decided anew (another time, outcome,
			// reason, message): one row each, the chain stays contiguous, and
			// both get the stored row, with its outcome.
			again := decision(1)
			again.ID = first.ID
			anew := decision(1)
			anew.ID, anew.Time, anew.Outcome, anew.Reason, anew.Message, anew.Policies = first.ID, base.Add(time.Hour), OutcomeAllow, "OWN_AIORG", "allowed", nil
			var wg sync.WaitGroup
			results := make([]Row, 4)
			recs := []*Record{again, decision(2), decision(3), anew}
			for i, r := range recs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if results[i], err = w.Write(ctx, r); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			// A retry answers with the stored row, read back, so with its
			// committed_at; the first Write may not have read it.
			first.CommittedAt = results[0].CommittedAt
			if !reflect.DeepEqual(results[0], first) || !reflect.DeepEqual(results[3], first) {
				t.Errorf("retry returned %+v / %+v, want the stored %+v", results[0], results[3], first)
			}
			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records").Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d rows stored (%v), want 3", n, err)
			}
			rep, err := Verify(ctx, pool)
			if err != nil || len(rep.Problems) > 0 {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}

func TestCloseFlushes(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w, err := NewWriter(ctx, pool, WriterOptions{Stream: "s", MaxBatch: 8, MaxWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Write(ctx, decision(i)); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		}()
	}
	eventually(t, "records queued", func() bool { s := w.Stats(); return s.Queued+s.InFlight+s.RowsCommitted+s.Overloaded > 0 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := w.Stats().RowsCommitted; got != ok.Load() {
		t.Errorf("%d rows committed, %d writers told so", got, ok.Load())
	}
	if _, err := w.Write(ctx, decision(99)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCancelledWaiter(t *testing.T) {
	pool, _ := newDB(t)
	w := newWriter(t, pool, WriterOptions{MaxWait: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	r := decision(1)
	done := make(chan error, 1)
	go func() { _, err := w.Write(ctx, r); done <- err }()
	eventually(t, "record queued", func() bool { s := w.Stats(); return s.Queued+s.InFlight > 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// The record stayed in its batch: a retry with the same ID finds it.
	row, err := w.Write(context.Background(), r)
	if err != nil || row.Seq != 1 {
		t.Fatalf("retry: %+v, %v", row, err)
	}
}

// TestExtremeTimes: a record's time may be any year from 1 to 9999; every
// insert method stores it to the microsecond, so the stored row hashes as
// written (verify recomputes the hash from the stored time).
func TestExtremeTimes(t *testing.T) {
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			pool, _ := newDB(t)
			ctx := context.Background()
			w := newWriter(t, pool, WriterOptions{method: m})
			for i, at := range []time.Time{
				time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
				time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
				time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			} {
				r := decision(i)
				r.Time = at
				got, err := w.Write(ctx, r)
				if err != nil || !got.Time.Equal(at) {
					t.Fatalf("%v: stored %v, %v", at, got.Time, err)
				}
			}
			rep, err := Verify(ctx, pool)
			if err != nil || len(rep.Problems) > 0 || rep.Rows != 3 {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}
