package chron

import (
	"context"
	"sync"
	"testing"
)

func claimed(i int, approval string) *Record {
	r := decision(i)
	r.Outcome, r.Reason, r.Message = OutcomeAllow, "OWN_AIORG", "gate cleared; approval "+approval
	r.Claim = &Claim{ApprovalID: approval, Taken: func(r Record) Record {
		r.Outcome, r.Reason, r.Message = OutcomeDeny, "APPROVAL_USED", "approval "+approval+" was used"
		return r
	}}
	return r
}

// TestClaimOnce: two gate replicas (two writers, two streams, the gate's
// role under row-level security) use one approval at the same moment:
// exactly one row is the ALLOW, the other is stored as APPROVAL_USED, and
// the records sharing their batches are stored as they were. A retry of
// the winner's record (same id) gets its ALLOW back, not APPROVAL_USED.
func TestClaimOnce(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	pool := d.as(t, d.gate.Name)
	for round := range 3 {
		approval := "approval-" + randomSuffix()
		ws := []*Writer{newWriter(t, pool, WriterOptions{Stream: GateStreamPrefix + "a-" + randomSuffix()}),
			newWriter(t, pool, WriterOptions{Stream: GateStreamPrefix + "b-" + randomSuffix()})}
		var wg sync.WaitGroup
		rows := make([]Row, 4)
		errs := make([]error, 4)
		for i := range 4 {
			wg.Go(func() {
				r := decision(100*round + i) // the neighbours: no claim
				if i < 2 {
					r = claimed(100*round+i, approval)
				}
				rows[i], errs[i] = ws[i%2].Write(ctx, r)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: write %d: %v", round, i, err)
			}
		}
		allows, used := 0, 0
		for _, r := range rows[:2] {
			switch {
			case r.Outcome == OutcomeAllow && r.Reason == "OWN_AIORG":
				allows++
			case r.Outcome == OutcomeDeny && r.Reason == "APPROVAL_USED":
				used++
			}
		}
		if allows != 1 || used != 1 {
			t.Fatalf("round %d: %d ALLOW and %d APPROVAL_USED, want one each: %+v", round, allows, used, rows[:2])
		}
		for _, r := range rows[2:] {
			if r.Reason != "POLICY_DENY" || r.Seq == 0 {
				t.Fatalf("round %d: a neighbour was not stored as written: %+v", round, r)
			}
		}
		// What is stored is what was answered, and the lock names the winner.
		var winner string
		if err := d.owner.QueryRow(ctx, "SELECT decision_id FROM chron_approval_uses WHERE approval_id = $1", approval).Scan(&winner); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[:2] {
			got, err := Get(ctx, d.owner, r.ID)
			if err != nil || got.Reason != r.Reason {
				t.Fatalf("round %d: stored %+v (%v), answered %s", round, got, err, r.Reason)
			}
			if (r.ID == winner) != (r.Outcome == OutcomeAllow) {
				t.Fatalf("round %d: the lock names %s, the ALLOW is %s", round, winner, r.ID)
			}
		}
		// The winner retried with the same id: its own ALLOW, once.
		for i, r := range rows[:2] {
			if r.Outcome != OutcomeAllow {
				continue
			}
			again := claimed(100*round+i, approval)
			again.ID, again.Time = r.ID, r.Time
			got, err := ws[(i+1)%2].Write(ctx, again)
			if err != nil || got.Outcome != OutcomeAllow || got.Seq != r.Seq || got.Stream != r.Stream {
				t.Fatalf("round %d: a retry of the winner: %+v, %v", round, got, err)
			}
		}
	}
	// The lock is final, even for the writers' role.
	if _, err := pool.Exec(ctx, "DELETE FROM chron_approval_uses"); err == nil {
		t.Fatal("the gate's role freed an approval")
	}
}

// TestClaimInOneBatch: two claims of one approval in one batch: the first
// wins, the second is APPROVAL_USED, and neither sinks the batch.
func TestClaimInOneBatch(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{MaxWait: 50e6, MaxBatch: 3})
	approval := "approval-" + randomSuffix()
	var wg sync.WaitGroup
	rows := make([]Row, 3)
	for i := range 3 {
		wg.Go(func() {
			r := decision(i)
			if i > 0 {
				r = claimed(i, approval)
			}
			var err error
			if rows[i], err = w.Write(ctx, r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if rows[1].Reason == rows[2].Reason || rows[0].Reason != "POLICY_DENY" {
		t.Fatalf("claims in one batch: %s and %s (neighbour %s)", rows[1].Reason, rows[2].Reason, rows[0].Reason)
	}
	if w.Stats().BatchesFailed != 0 {
		t.Fatalf("a batch failed: %+v", w.Stats())
	}
}

// TestManagerReadsApprovalRequests: the manager's role, bound to its own
// streams, reads the gates' approval.requested rows (it materializes
// them) and still no other row of theirs.
func TestManagerReadsApprovalRequests(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	w := newWriter(t, d.as(t, d.gate.Name), WriterOptions{Stream: GateStreamPrefix + "0"})
	req := decision(1)
	req.Kind, req.Reason = KindApprovalRequested, "APPROVAL_REQUIRED"
	for _, r := range []*Record{decision(0), req} {
		if _, err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	mgr := d.as(t, d.manager.Name)
	for kind, want := range map[Kind]int{KindApprovalRequested: 1, KindDecision: 0} {
		page, err := ListPage(ctx, mgr, Filter{Kind: string(kind), OldestFirst: true})
		if err != nil || len(page.Rows) != want {
			t.Fatalf("the manager reads %d %s rows of the gate's (%v), want %d", len(page.Rows), kind, err, want)
		}
	}
	var n int
	if err := mgr.QueryRow(ctx, "SELECT count(*) FROM chron_approval_uses").Scan(&n); err != nil {
		t.Fatalf("the manager cannot read the approvals' uses: %v", err)
	}
}
