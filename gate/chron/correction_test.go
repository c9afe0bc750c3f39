package chron

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// fault holds every insert into chron_records inside its statement, on an
// advisory lock the test holds, and can make the server refuse correction
// rows: a batch whose INSERT is under way, and a commit that fails, on
// demand.
type fault struct {
	t    *testing.T
	pool *pgxpool.Pool
	hold *pgxpool.Conn
}

const faultLock = 4242

func newFault(t *testing.T, pool *pgxpool.Pool) *fault {
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE test_fault (refuse_corrections bool NOT NULL)`,
		`INSERT INTO test_fault VALUES (false)`,
		`CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_advisory_xact_lock_shared(4242);
			IF NEW.kind = 'decision.correction' AND (SELECT refuse_corrections FROM test_fault) THEN
				RAISE EXCEPTION 'test: corrections refused';
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER test_fault BEFORE INSERT ON chron_records FOR EACH ROW EXECUTE FUNCTION test_fault()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return &fault{t: t, pool: pool}
}

// block makes inserts wait; blocked tells when one does.
func (f *fault) block() {
	c, err := f.pool.Acquire(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := c.Exec(context.Background(), "SELECT pg_advisory_lock($1)", faultLock); err != nil {
		f.t.Fatal(err)
	}
	f.hold = c
	f.t.Cleanup(f.release)
}

func (f *fault) blocked() bool {
	var n int
	err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
	return err == nil && n > 0
}

func (f *fault) release() {
	if f.hold == nil {
		return
	}
	if _, err := f.hold.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", faultLock); err != nil {
		f.t.Error(err)
	}
	f.hold.Release()
	f.hold = nil
}

func (f *fault) refuseCorrections(on bool) {
	if _, err := f.pool.Exec(context.Background(), "UPDATE test_fault SET refuse_corrections = $1", on); err != nil {
		f.t.Fatal(err)
	}
}

// corrected is a decision whose correction names it, as the gate's does.
func corrected(i int) *Record {
	r := decision(i)
	r.ID = NewID()
	r.Outcome, r.Reason = OutcomeAllow, "OWN_AIORG"
	r.Correction = func(s Record) Record {
		id := s.ID
		s.ID, s.Time, s.Kind, s.Outcome, s.Reason = "", time.Time{}, KindDecisionCorrection, OutcomeDeny, "CHRON_UNAVAILABLE"
		s.Message = "decision " + id + " was answered DENY"
		return s
	}
	return r
}

// storedTx returns the transaction (xmin) and seq of the row with id, and
// those of its correction; ok is false while either is missing.
func storedTx(t *testing.T, pool *pgxpool.Pool, id string) (tx, seq, fixTx, fixSeq int64, ok bool) {
	t.Helper()
	q := `SELECT xmin::text::bigint, seq FROM chron_records WHERE `
	ctx := context.Background()
	if pool.QueryRow(ctx, q+`id = $1`, id).Scan(&tx, &seq) != nil {
		return 0, 0, 0, 0, false
	}
	if pool.QueryRow(ctx, q+`kind = 'decision.correction' AND message = $1`, "decision "+id+" was answered DENY").Scan(&fixTx, &fixSeq) != nil {
		return 0, 0, 0, 0, false
	}
	return tx, seq, fixTx, fixSeq, true
}

// TestCorrectionsWithAFullQueue: with the queue full, a caller who gives
// up while its record is queued gets its correction in the record's own
// transaction, and one who gives up while its record's INSERT runs gets
// it in a later batch: neither goes through the queue, so neither is
// dropped (the gate once wrote them with a Write that ErrOverloaded ended).
func TestCorrectionsWithAFullQueue(t *testing.T) {
	pool, _ := newDB(t)
	f := newFault(t, pool)
	w := newWriter(t, pool, WriterOptions{QueueSize: 1, MaxBatch: 1, CommitTimeout: time.Minute})
	f.block()

	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelA()
	defer cancelB()
	a, b := corrected(1), corrected(2)
	errs := make(chan error, 2)
	go func() { _, err := w.Write(ctxA, a); errs <- err }()
	eventually(t, "A's INSERT under way", f.blocked)
	go func() { _, err := w.Write(ctxB, b); errs <- err }()
	eventually(t, "B queued", func() bool { return w.Stats().Queued == 1 })
	if _, err := w.Write(context.Background(), decision(3)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("write with the queue full: %v, want ErrOverloaded", err)
	}
	cancelB() // B gives up while queued: before its batch's INSERT
	cancelA() // A gives up while its INSERT runs
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("a caller who gave up: %v, want context.Canceled", err)
		}
	}
	if _, err := w.Write(context.Background(), decision(4)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("the queue is still full: %v, want ErrOverloaded", err)
	}
	f.release()

	eventually(t, "both corrections stored", func() bool { return w.Stats().Corrections == 2 })
	txA, seqA, fixTxA, _, okA := storedTx(t, pool, a.ID)
	txB, seqB, fixTxB, fixSeqB, okB := storedTx(t, pool, b.ID)
	if !okA || !okB {
		t.Fatalf("records or corrections missing: A %v, B %v", okA, okB)
	}
	if txB != fixTxB || fixSeqB != seqB+1 {
		t.Errorf("B (tx %d, seq %d) and its correction (tx %d, seq %d): want one transaction, the correction next", txB, seqB, fixTxB, fixSeqB)
	}
	if txA == fixTxA || seqA != 1 {
		t.Errorf("A (tx %d, seq %d) and its correction (tx %d): A's INSERT was under way, so the correction comes later", txA, seqA, fixTxA)
	}
	if st := w.Stats(); st.Carried != 0 || st.RowsCommitted != 4 {
		t.Errorf("stats %+v: want 4 rows, nothing carried", st)
	}
	rep, err := Verify(context.Background(), pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 4 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestCarriedCorrectionSurvivesFailedCommits: a correction carried to a
// later batch stays with the writer while that batch fails, is retried,
// lands once the database takes it, and Close does not return before.
func TestCarriedCorrectionSurvivesFailedCommits(t *testing.T) {
	pool, _ := newDB(t)
	f := newFault(t, pool)
	w, err := NewWriter(context.Background(), pool, WriterOptions{Stream: "gate-0", CommitTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.block()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := corrected(1)
	done := make(chan error, 1)
	go func() { _, err := w.Write(ctx, r); done <- err }()
	eventually(t, "the record's INSERT under way", f.blocked)
	f.refuseCorrections(true)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller who gave up: %v, want context.Canceled", err)
	}
	f.release()
	eventually(t, "the carried correction's batches to fail", func() bool { return w.Stats().BatchesFailed >= 2 })
	if st := w.Stats(); st.Carried != 1 || st.Corrections != 0 || st.RowsCommitted != 1 {
		t.Fatalf("stats %+v: want the record stored and its correction carried", st)
	}
	// New records keep flowing meanwhile; the correction rides with them
	// and their batch fails as a whole, so their callers are told.
	if _, err := w.Write(context.Background(), decision(2)); err == nil || !strings.Contains(err.Error(), "corrections refused") {
		t.Fatalf("a record in a batch with the refused correction: %v", err)
	}
	f.refuseCorrections(false)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, _, _, _, ok := storedTx(t, pool, r.ID); !ok {
		t.Fatal("the correction is not stored after Close")
	}
	if st := w.Stats(); st.Corrections != 1 || st.Carried != 0 {
		t.Errorf("stats %+v", st)
	}
	rep, err := Verify(context.Background(), pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 2 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestCorrectionAfterAnUnknownOutcome: the commit times out after the
// batch reached the server, which then commits it. The caller was told the
// error; the writer finds the record stored and adds its correction.
func TestCorrectionAfterAnUnknownOutcome(t *testing.T) {
	pool, _ := newDB(t)
	f := newFault(t, pool)
	w := newWriter(t, pool, WriterOptions{CommitTimeout: time.Second})
	f.block()
	r := corrected(1)
	if _, err := w.Write(context.Background(), r); !errors.Is(err, errUnknownOutcome) {
		t.Fatalf("write whose commit timed out on the server: %v, want an unknown outcome", err)
	}
	// Carried until the outcome is known: the server still holds the batch.
	eventually(t, "the correction carried", func() bool { return w.Stats().Carried == 1 })
	f.release()
	// The batch either landed after all (then its correction is owed) or
	// was aborted on the server when the connection went (then the next
	// committed batch proves it never will, and the correction goes).
	// Another record forces that batch (retried with its ID: it may meet
	// the late batch on the same seq once); either way nothing stays
	// carried and Chron never holds the record without its correction.
	next := decision(2)
	eventually(t, "another record stored", func() bool {
		_, err := w.Write(context.Background(), next)
		return err == nil
	})
	eventually(t, "nothing carried", func() bool { return w.Stats().Carried == 0 })
	var recordRows, fixRows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE id = $1),
		count(*) FILTER (WHERE kind = 'decision.correction' AND message = $2) FROM chron_records`,
		r.ID, "decision "+r.ID+" was answered DENY").Scan(&recordRows, &fixRows); err != nil {
		t.Fatal(err)
	}
	if recordRows != fixRows {
		t.Fatalf("%d rows of the record and %d of its correction: want both or neither", recordRows, fixRows)
	}
	rep, err := Verify(context.Background(), pool)
	if err != nil || len(rep.Problems) > 0 || rep.Rows != int64(1+recordRows+fixRows) {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// TestCarriedCorrectionsBounded: while the carry list is full (QueueSize)
// the writer takes no new records, so the queue fills and Writes are
// refused rather than corrections piling up; Close gives the carried
// corrections up when the database keeps refusing them, and says so.
func TestCarriedCorrectionsBounded(t *testing.T) {
	pool, _ := newDB(t)
	f := newFault(t, pool)
	w, err := NewWriter(context.Background(), pool, WriterOptions{Stream: "gate-0", QueueSize: 1, CommitTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.block()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := w.Write(ctx, corrected(1)); done <- err }()
	eventually(t, "the record's INSERT under way", f.blocked)
	f.refuseCorrections(true)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Write reported success to a caller that gave up")
	}
	f.release()
	eventually(t, "the correction carried", func() bool { return w.Stats().Carried == 1 && w.Stats().RowsCommitted == 1 })

	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if _, err := w.Write(short, decision(2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a record while the carry list is full: %v, want it left queued until its deadline", err)
	}
	if _, err := w.Write(context.Background(), decision(3)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("with the queue full: %v, want ErrOverloaded", err)
	}
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "1 corrections not stored") || !strings.Contains(err.Error(), "corrections refused") {
		t.Fatalf("Close with a correction the database refuses: %v", err)
	}
	if st := w.Stats(); st.RowsCommitted != 1 || st.Corrections != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestWriteWithinGivesUp: WriteWithin's own bound ends the wait like a
// context deadline, timer reused or not, and a record that commits after
// its caller gave up gets its correction.
func TestWriteWithinGivesUp(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	f := newFault(t, pool)
	f.block()
	var ids []string
	for i := range 2 { // the second call reuses the first one's timer
		r := corrected(i)
		ids = append(ids, r.ID)
		if _, err := w.WriteWithin(ctx, r, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v, want the deadline", i, err)
		}
	}
	f.release()
	for _, id := range ids {
		eventually(t, "record "+id+" and its correction stored", func() bool {
			_, _, _, _, ok := storedTx(t, pool, id)
			return ok
		})
	}
	// Unbounded and bounded calls still commit and answer.
	if _, err := w.WriteWithin(ctx, decision(9), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteWithin(ctx, decision(10), 0); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLostAfterTheBatchWasSent: the batch reached the server,
// then its connection died (the backend terminated) or its commit timeout
// ended the wait. In autocommit (copy, and single: the gate's own method
// under row-level security) the writer cannot know whether it committed:
// the caller is told an unknown outcome, never "nothing stored". In a
// transaction (unnest) COMMIT was never sent: a certain failure. Either
// way the next record is stored, on a new connection, and Chron verifies.
func TestConnectionLostAfterTheBatchWasSent(t *testing.T) {
	for _, m := range methods {
		for _, fault := range []string{"terminated", "timed out"} {
			t.Run(m.String()+"/"+fault, func(t *testing.T) {
				pool, _ := newDB(t)
				f := newFault(t, pool)
				timeout := time.Minute
				if fault == "timed out" {
					timeout = 300 * time.Millisecond
				}
				w := newWriter(t, pool, WriterOptions{method: m, CommitTimeout: timeout})
				f.block()
				done := make(chan error, 1)
				first := decision(1)
				first.ID = NewID()
				go func() { _, err := w.Write(context.Background(), first); done <- err }()
				eventually(t, "the batch to wait on the server", f.blocked)
				if fault == "terminated" {
					if _, err := pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
						WHERE locktype = 'advisory' AND NOT granted`); err != nil {
						t.Fatal(err)
					}
				}
				err := <-done
				if err == nil {
					t.Fatal("the write succeeded, want its failure")
				}
				if unknown := errors.Is(err, errUnknownOutcome); unknown != (m != insertUnnest) {
					t.Fatalf("%v: unknown outcome %v, want %v", err, unknown, m != insertUnnest)
				}
				f.release()
				eventually(t, "the next record stored", func() bool {
					_, err := w.Write(context.Background(), decision(2))
					return err == nil
				})
				var firsts int
				if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM chron_records WHERE id = $1`, first.ID).Scan(&firsts); err != nil {
					t.Fatal(err)
				}
				rep, err := Verify(context.Background(), pool)
				if err != nil || len(rep.Problems) > 0 || rep.Rows != int64(1+firsts) || firsts > 1 {
					t.Fatalf("verify: %+v, %v (the first record stored %d times)", rep, err, firsts)
				}
			})
		}
	}
}

// TestPreparedStatementLost: a session that lost the writer's prepared
// statements (DISCARD ALL, DEALLOCATE, a pooler between the gate and
// PostgreSQL) fails the Bind while pgx still lists the statement, or a
// claim's cached query. The batch is stored all the same, on a new
// connection that prepares them again, and so is every batch after it.
// Before, every batch on that connection failed, and the gate answered
// DENY until it restarted.
func TestPreparedStatementLost(t *testing.T) {
	for _, m := range []insertMethod{insertUnnest, insertSingle} {
		t.Run(m.String(), func(t *testing.T) {
			_, url := newDB(t)
			// One connection, so the test's Acquire gets the writer's.
			pool := newPool(t, url, func(c *pgxpool.Config) { c.MaxConns = 1 })
			w := newWriter(t, pool, WriterOptions{method: m})
			ctx := context.Background()
			// A decision, two claims (the second's session has the claim's
			// query cached), then two decisions.
			const records = 5
			for i := range records {
				if i > 0 {
					c, err := pool.Acquire(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Conn().PgConn().Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
						t.Fatal(err)
					}
					c.Release()
				}
				r := decision(i + 1)
				if i == 1 || i == 2 { // a claim also runs a query pgx prepared and cached
					r = claimed(i+1, "approval-"+randomSuffix())
				}
				if _, err := w.Write(ctx, r); err != nil {
					t.Fatalf("record %d, its session's statements gone: %v", i+1, err)
				}
			}
			if st := w.Stats(); st.BatchesFailed != 0 || st.RowsCommitted != records {
				t.Fatalf("stats %+v: want %d rows and no failed batch", st, records)
			}
			rep, err := Verify(ctx, pool)
			if err != nil || len(rep.Problems) > 0 || rep.Rows != records {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// TestOutcome: which failures tell the writer that nothing was stored.
// Only those may be answered as certain failures; the rest are unknown
// and looked up before the stream goes on.
func TestOutcome(t *testing.T) {
	refused := &pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "23514"}
	ended := &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}
	for _, c := range []struct {
		name    string
		err     error
		unknown bool
	}{
		{"the statement refused", refused, false},
		{"the connection ended by the server", ended, true},
		{"nothing sent", &exchangeError{err: io.ErrClosedPipe}, false},
		{"part of the batch sent", &exchangeError{err: io.ErrClosedPipe, sent: true}, true},
		{"the answer lost", &exchangeError{err: io.ErrUnexpectedEOF, sent: true}, true},
		{"the server ended it during the answer", &exchangeError{err: ended, sent: true}, true},
		{"the deadline during the answer", &exchangeError{err: withCtx(expired(t), io.ErrUnexpectedEOF), sent: true}, true},
	} {
		if got := errors.Is(outcome(c.err), errUnknownOutcome); got != c.unknown {
			t.Errorf("%s: unknown outcome %v, want %v", c.name, got, c.unknown)
		}
	}
}

func expired(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel)
	return ctx
}
