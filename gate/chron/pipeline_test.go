package chron

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestPipelineBehindFailedCommit: a batch inserted while the one ahead of
// it commits is rolled back when that commit fails. Its records are told
// so and are not stored; the stream has no gap and the writer goes on.
//
// A deferred constraint trigger (it runs at COMMIT) makes the commits
// wait on advisory locks the test holds: "hold" rows wait for lock 42,
// "hold-fail" rows wait for lock 43 and then fail the transaction.
func TestPipelineBehindFailedCommit(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
CREATE FUNCTION test_commit_hook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.action = 'hold' THEN PERFORM pg_advisory_xact_lock(42); END IF;
	IF NEW.action = 'hold-fail' THEN
		PERFORM pg_advisory_xact_lock(43);
		RAISE EXCEPTION 'refused at commit by the test';
	END IF;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_commit_hook AFTER INSERT ON chron_records
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_hook();`); err != nil {
		t.Fatal(err)
	}
	locks, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Release()
	if _, err := locks.Exec(ctx, "SELECT pg_advisory_lock(42), pg_advisory_lock(43)"); err != nil {
		t.Fatal(err)
	}

	// One record per batch, so that the ones queued behind are batches of their own.
	w := newWriter(t, pool, WriterOptions{MaxBatch: 1})
	if _, err := w.Write(ctx, decision(0)); err != nil { // the head is read; the writer pipelines from here
		t.Fatal(err)
	}
	type result struct {
		row Row
		err error
	}
	write := func(i int, action string) chan result {
		c := make(chan result, 1)
		r := decision(i)
		r.Action = action
		go func() {
			row, err := w.Write(ctx, r)
			c <- result{row, err}
		}()
		return c
	}
	// hold occupies the writer (alone, so committed the plain way) while
	// the rest queue up behind it.
	hold := write(1, "hold")
	eventually(t, "the hold row's commit to wait", func() bool { return w.Stats().InFlight == 1 })
	fail := write(2, "hold-fail")
	eventually(t, "the failing record to queue", func() bool { return w.Stats().Queued == 1 })
	behind := write(3, "deploy:staging")
	eventually(t, "the record behind it to queue", func() bool { return w.Stats().Queued == 2 })
	after := write(4, "deploy:staging")
	eventually(t, "a third record to queue", func() bool { return w.Stats().Queued == 3 })

	if _, err := locks.Exec(ctx, "SELECT pg_advisory_unlock(42)"); err != nil {
		t.Fatal(err)
	}
	if r := <-hold; r.err != nil {
		t.Fatalf("hold: %v", r.err)
	}
	// hold-fail's COMMIT now waits for lock 43 while the record behind it
	// is inserted in an open transaction.
	eventually(t, "the failing commit to wait while the batch behind it is inserted", func() bool {
		var waiting, open int
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE wait_event = 'advisory'),
			count(*) FILTER (WHERE state = 'idle in transaction')
			FROM pg_stat_activity WHERE datname = current_database()`).Scan(&waiting, &open)
		return err == nil && waiting == 1 && open >= 1
	})
	if _, err := locks.Exec(ctx, "SELECT pg_advisory_unlock(43)"); err != nil {
		t.Fatal(err)
	}

	if r := <-fail; r.err == nil || !strings.Contains(r.err.Error(), "refused at commit by the test") {
		t.Errorf("the failing record: %v, want the commit's refusal", r.err)
	}
	rb := <-behind
	if rb.err == nil || !strings.Contains(rb.err.Error(), "the batch ahead of it failed") {
		t.Errorf("the record behind: %v, want: the batch ahead of it failed", rb.err)
	}
	if errors.Is(rb.err, errUnknownOutcome) {
		t.Errorf("the record behind never sent COMMIT; its outcome is known: %v", rb.err)
	}
	ra := <-after
	if ra.err != nil {
		t.Errorf("the record after: %v", ra.err)
	}
	for _, action := range []string{"hold-fail"} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records WHERE action = $1", action).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s rows stored: %d, %v", action, n, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM chron_records").Scan(&n); err != nil || n != 3 {
		t.Errorf("rows stored: %d (%v), want 3: the first, hold, and the record after", n, err)
	}
	if ra.err == nil && ra.row.Seq != 3 {
		t.Errorf("the record after took seq %d, want 3: no gap where the rolled-back batch was", ra.row.Seq)
	}
	rep, err := Verify(ctx, pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
