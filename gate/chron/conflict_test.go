package chron

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDuplicateIDCompared: a Write whose ID is stored is compared, not
// trusted. The same identity is an idempotent retry and gets the stored
// row (its outcome, not the retry's); another identity is ErrConflict and
// stores nothing, whether the stored row is older or in the same batch;
// each refusal is counted, reported (OnConflict) and recorded in a
// chron.conflict row of the writer's own stream, never a silent success.
func TestDuplicateIDCompared(t *testing.T) {
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			pool, _ := newDB(t)
			ctx := context.Background()
			var conflicted atomic.Int64
			w := newWriter(t, pool, WriterOptions{method: m, MaxWait: 20 * time.Millisecond,
				OnConflict: func(string) { conflicted.Add(1) }})
			stored, err := w.Write(ctx, decision(1))
			if err != nil {
				t.Fatal(err)
			}
			withID := func(edit func(r *Record)) *Record {
				r := decision(1)
				r.ID = stored.ID
				edit(r)
				return r
			}

			// Identity fields: any difference is a conflict.
			for name, edit := range map[string]func(r *Record){
				"kind":      func(r *Record) { r.Kind = KindInit },
				"actor":     func(r *Record) { r.Actor = "token:forged" },
				"agent uid": func(r *Record) { r.AgentUID = "00000000-0000-4000-8000-000000000002" },
				"namespace": func(r *Record) { r.AgentNamespace = "other" },
				"agent":     func(r *Record) { r.AgentName = "other-bot" },
				"action":    func(r *Record) { r.Action = "deploy:staging" },
				"context":   func(r *Record) { r.Context["target"] = "prod-us-1" },
			} {
				if _, err := w.Write(ctx, withID(edit)); !errors.Is(err, ErrConflict) {
					t.Errorf("%s differs: %v, want ErrConflict", name, err)
				}
			}
			// What a retry may decide anew, and the context spelled another
			// way (a float for an int): the stored row comes back.
			row, err := w.Write(ctx, withID(func(r *Record) {
				r.Time, r.Outcome, r.Reason, r.Message = base.Add(time.Hour), OutcomeAllow, "OWN_AIORG", "allowed"
				r.Policies, r.SkillRules, r.SkillDigest, r.Anchor = nil, nil, "sha256:other", "peer@claiim.io"
				r.Org, r.SkillVersionID = "finance", "" // resolved from the snapshot, not asked
				r.Context = map[string]any{"attempt": 1.0, "target": "prod-eu-1"}
			}))
			if err != nil {
				t.Fatalf("retry decided anew: %v", err)
			}
			if row.Seq != stored.Seq || row.Outcome != OutcomeDeny || row.Reason != "POLICY_DENY" || row.Message != stored.Message {
				t.Errorf("retry got %+v, want the stored row (seq %d, DENY POLICY_DENY)", row, stored.Seq)
			}

			// In one batch: a forged copy and a true retry of the stored row,
			// and two different records under a new ID. Whatever their order,
			// the retry gets the stored row, the forgery ErrConflict, and
			// exactly one of the new pair is stored.
			fresh := NewID()
			newPair := func(action string) *Record { r := decision(2); r.ID, r.Action = fresh, action; return r }
			recs := []*Record{withID(func(r *Record) { r.Action = "deploy:staging" }), withID(func(*Record) {}),
				newPair("deploy:staging"), newPair("deploy:canary")}
			rows, errs := make([]Row, len(recs)), make([]error, len(recs))
			var wg sync.WaitGroup
			for i, r := range recs {
				wg.Add(1)
				go func() { defer wg.Done(); rows[i], errs[i] = w.Write(ctx, r) }()
			}
			wg.Wait()
			if !errors.Is(errs[0], ErrConflict) {
				t.Errorf("forged copy in a batch: %v, want ErrConflict", errs[0])
			}
			if errs[1] != nil || rows[1].Seq != stored.Seq {
				t.Errorf("retry in a batch: %+v, %v, want the stored row", rows[1], errs[1])
			}
			if (errs[2] == nil) == (errs[3] == nil) || !errors.Is(errors.Join(errs[2], errs[3]), ErrConflict) {
				t.Errorf("two records under one new ID: %v / %v, want one stored and one ErrConflict", errs[2], errs[3])
			}

			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records WHERE kind <> $1", KindConflict).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%d rows stored (%v), want 2", n, err)
			}
			if st := w.Stats(); st.Conflicts != 9 {
				t.Errorf("stats %+v: want 9 conflicts", st)
			}
			if got := conflicted.Load(); got != 9 {
				t.Errorf("OnConflict called %d times, want 9", got)
			}
			// Every refusal is a chron.conflict row in the writer's stream;
			// the forged copy in the batch is the "action" edit again, so
			// it adds no second row: 8.
			eventually(t, "the chron.conflict rows", func() bool {
				err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records WHERE kind = $1 AND stream = 'gate-0'", KindConflict).Scan(&n)
				return err == nil && n == 8
			})
			rows, _, err = List(ctx, pool, Filter{Kind: string(KindConflict)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if r.Outcome != OutcomeDeny || r.Reason != ReasonIDConflict || !strings.Contains(r.Message, "already stored with different content") {
					t.Errorf("conflict row %+v", r.Record)
				}
				if id := r.Context["id"]; id != stored.ID && id != fresh {
					t.Errorf("conflict row names id %v", id)
				}
			}
			rep, err := Verify(ctx, pool)
			if err != nil || len(rep.Problems) > 0 {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}
