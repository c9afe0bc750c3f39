package chron

// Pipelined group commit. While one batch's COMMIT is on its way (the
// round trip and the WAL flush), the next batch is gathered, chained after
// it and inserted in a transaction of its own on another connection. That
// transaction commits only once the batch ahead has: the stream never
// holds a row whose predecessor is missing, and the committed batches are
// the ones a sequential writer would have committed. If the batch ahead
// fails, the one behind is rolled back (it never sent COMMIT, so it is
// certainly not stored) and its records get the error, as any failed
// batch's do; the head is re-read before the next. A batch that must
// re-read the head, check the checkpoint, carry corrections or claim an
// approval waits for the batch ahead and commits alone (commit), as every
// batch did before.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// flight is a batch inserted in an open transaction, committing.
type flight struct {
	conn        *pgxpool.Conn
	cancel      context.CancelFunc
	all         []*pending // the batch's records and the corrections sealed with them
	n           int        // records taken from the queue
	start       time.Time
	committedAt time.Time
	done        chan struct{} // closed when COMMIT has returned
	err         error         // COMMIT's error, through outcome
}

// errInFlightDup: an ID of the batch is already stored, or is being
// stored by the batch ahead; nothing was inserted.
var errInFlightDup = errors.New("an id is already stored")

// pipelines reports whether batch may be inserted while the batch ahead
// commits: when one is committing or more records wait, and the batch
// needs none of what commit does first.
func (w *Writer) pipelines(batch []*pending) bool {
	return len(batch) > 0 && (w.fl != nil || len(w.queue) > 0) &&
		w.opts.method == insertCopy && !w.opts.sequential && !w.stale && len(w.carry) == 0 &&
		(w.opts.Checkpoint == nil || w.cpChecked) && !claiming(batch) && w.guard() == nil
}

// pipeline inserts batch behind the flight ahead and, once that one has
// committed, sends its COMMIT and leaves it in flight.
func (w *Writer) pipeline(batch []*pending) {
	start := time.Now()
	all := w.dedupe(batch)
	records := all
	for _, p := range records {
		for _, c := range p.seal() {
			all = append(all, &pending{p: c, isFix: true, of: p})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CommitTimeout)
	f := &flight{cancel: cancel, all: all, n: len(batch), start: start, done: make(chan struct{})}
	w.lastBatch = len(batch)
	err := w.begin(ctx, f)
	w.land() // the batch ahead
	switch {
	case w.stale:
		err = fmt.Errorf("the batch ahead of it failed: %w", cmpErr(w.lastErr))
	case errors.Is(err, errInFlightDup):
		// Answer the stored IDs and commit the rest alone, as commit does.
		defer cancel()
		inserted, err := w.store(ctx, f.n, all, nil, false, false)
		w.onCommit(max(inserted, f.n), time.Since(start), err)
		w.after(inserted, err)
		return
	}
	if err == nil {
		err = w.guard()
	}
	if err != nil { // no COMMIT was sent: nothing of it is stored
		if f.conn != nil {
			rollback(f.conn)
		}
		cancel()
		err = w.failBatch(f.n, all, nil, err, false)
		w.onCommit(f.n, time.Since(start), err)
		w.after(0, err)
		return
	}
	last := all[len(all)-1].row
	w.lastSeq, w.lastHash = last.Seq, last.Hash // the tip: the next batch chains after it
	w.fl = f
	go func() {
		tag, err := f.conn.Exec(ctx, "COMMIT")
		if err == nil && tag.String() != "COMMIT" {
			// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
			err = fmt.Errorf("the transaction was rolled back (%s)", tag)
		}
		f.err = outcome(err)
		close(f.done)
	}()
}

func cmpErr(err error) error {
	if err == nil {
		return errors.New("not committed")
	}
	return err
}

// begin chains f's rows after the stream's tip and inserts them in a
// transaction left open on a connection of its own: BEGIN and the INSERT
// in one round trip.
func (w *Writer) begin(ctx context.Context, f *flight) error {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	w.chainRows(f.all)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(unnestSQL, unnestArgs(f.all)...)
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	var n int
	if err == nil {
		err = br.QueryRow().Scan(&n, &f.committedAt)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(f.all) {
		err = errInFlightDup
	}
	if err != nil {
		rollback(conn)
		return err
	}
	f.conn = conn
	return nil
}

// rollback ends conn's transaction and releases it; a connection that
// cannot roll back is closed by the pool rather than reused.
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
	conn.Release()
}

// land waits for the batch in flight, if any, and answers its records.
func (w *Writer) land() {
	f := w.fl
	if f == nil {
		return
	}
	w.fl = nil
	<-f.done
	f.conn.Release()
	f.cancel()
	took := time.Since(f.start)
	w.lastCommit = took
	if f.err != nil {
		err := w.failBatch(f.n, f.all, nil, f.err, errors.Is(f.err, errUnknownOutcome))
		w.onCommit(f.n, took, err)
		w.after(0, err)
		return
	}
	owed := w.answerStored(f.all, f.committedAt.UTC(), nil)
	w.settle(false, false, owed)
	w.onCommit(len(f.all), took, nil)
	w.after(len(f.all), nil)
}

// answerStored answers the records of a committed batch with their rows
// and returns the corrections owed by callers who gave up meanwhile.
func (w *Writer) answerStored(all []*pending, committedAt time.Time, owed []carried) []carried {
	for _, p := range all {
		p.row.CommittedAt = committedAt
		if p.isFix {
			w.fixes.Add(1)
		} else {
			owed = owe(owed, w.answerRivals(p, &storedRow{Row: p.row, ctxJSON: p.p.ctxJSON}, nil), "")
			owed = owe(owed, p.answer(p.row, nil, false), "")
		}
	}
	last := all[len(all)-1].row
	w.setHead(last.Seq, last.Hash)
	w.rows.Add(int64(len(all)))
	w.batches.Add(1)
	return owed
}

func (w *Writer) onCommit(rows int, took time.Duration, err error) {
	if w.opts.OnCommit != nil {
		w.opts.OnCommit(rows, took, err)
	}
}
