package chron

// Group commit: the writer goroutine takes queued records in batches,
// commits each batch and answers its callers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxLinger bounds the adaptive batch wait.
const maxLinger = 2 * time.Millisecond

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]*pending, 0, w.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	open := true
	var closedAt time.Time
	for open || len(w.carry) > 0 {
		if len(w.carry) > 0 && w.closing() {
			// Close gives carried corrections one more commit timeout, then
			// says how many it gave up, and fails what is still queued.
			if closedAt.IsZero() {
				closedAt = time.Now()
			} else if time.Since(closedAt) > w.opts.CommitTimeout {
				w.closeError(w.lastErr)
				w.failQueued(w.closeErr)
				return
			}
		}
		var first *pending
		first, open = w.next(open, retry)
		if first == nil && len(w.carry) == 0 {
			continue
		}
		w.busySince.Store(time.Now().UnixNano())
		batch = batch[:0]
		if first != nil {
			w.inFlight.Store(1)
			batch = w.fill(append(batch, first), timer)
		}
		start := time.Now()
		inserted, err := w.commit(batch)
		w.lastBatch, w.lastCommit = len(batch), time.Since(start)
		w.after(inserted, err)
		w.busySince.Store(0)
		w.inFlight.Store(0)
		clear(batch) // let answered records be collected
	}
}

// after is the writer's bookkeeping once a batch is settled, committed
// (inserted rows) or failed (err).
func (w *Writer) after(inserted int, err error) {
	if err != nil && !serverAnswered(err) {
		// The database is unreachable: fail what is queued now instead of
		// letting each record wait for its own timeout in turn.
		w.failQueued(err)
	}
	// Carried corrections retry at once after progress, else back off.
	if err == nil && inserted > 0 {
		w.retryIn = 0
	} else {
		w.retryIn = min(max(2*w.retryIn, 50*time.Millisecond), w.opts.CommitTimeout)
	}
	if err != nil {
		w.lastErr = err
	}
}

func (w *Writer) closing() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}

// next waits for the first record of a batch. With corrections carried it
// also wakes after retryIn to commit them alone; while the carry list is
// full it takes no records at all, so the queue fills and Writes are
// refused rather than corrections piling up. A nil record with open
// means: commit the carried corrections.
func (w *Writer) next(open bool, retry *time.Timer) (*pending, bool) {
	if len(w.carry) == 0 {
		p, ok := <-w.queue
		return p, ok
	}
	retry.Reset(w.retryIn)
	defer retry.Stop()
	if !open || len(w.carry) >= w.opts.QueueSize {
		<-retry.C
		return nil, open
	}
	select {
	case p, ok := <-w.queue:
		return p, ok
	case <-retry.C:
		return nil, true
	}
}

// fill adds queued records to batch until it is full, the queue is closed,
// or MaxWait has passed since the first one.
func (w *Writer) fill(batch []*pending, timer *time.Timer) []*pending {
	wait, enough := w.opts.MaxWait, w.opts.MaxBatch
	if wait == 0 && w.lastBatch > 1 {
		// Callers are arriving together: linger for company, at most as
		// long as a commit takes (it costs about the same for 1 row or 50)
		// and only until as many have come as last time. A caller alone
		// never waits.
		wait, enough = min(w.lastCommit, maxLinger), w.lastBatch
	}
	if wait > 0 {
		timer.Reset(wait)
		defer timer.Stop()
	}
	for len(batch) < w.opts.MaxBatch {
		select {
		case p, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
			w.inFlight.Store(int64(len(batch)))
			continue
		default:
		}
		if wait <= 0 || len(batch) >= enough {
			return batch
		}
		select {
		case p, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
			w.inFlight.Store(int64(len(batch)))
		case <-timer.C:
			return batch
		}
	}
	return batch
}

func (w *Writer) failQueued(err error) {
	for {
		select {
		case p, ok := <-w.queue:
			if !ok {
				return
			}
			w.failedRows.Add(1)
			p.answer(Row{}, fmt.Errorf("chron: record not stored: %w", err), false)
		default:
			return
		}
	}
}

// serverAnswered tells a database's refusal of this batch from a failure to
// reach it: no PostgreSQL error at all, or a connection exception (08) or
// shutdown (57, e.g. 57P01 admin_shutdown) affects every queued record.
func serverAnswered(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	class := pgErr.Code[:min(2, len(pgErr.Code))]
	return class != "08" && class != "57"
}

// failBatch answers every record of a batch of n with err; unknown says
// the rows may have landed. The stream head is re-read before the next
// batch.
func (w *Writer) failBatch(n int, all []*pending, owed []carried, err error, unknown bool) error {
	w.stale = true
	w.failedBatches.Add(1)
	err = fmt.Errorf("chron: batch of %d records not committed: %w", n, err)
	for _, p := range all {
		if !p.isFix {
			w.failedRows.Add(int64(1 + len(p.followers) + len(p.rivals)))
			w.answerRivals(p, nil, err)
			owed = owe(owed, p.answer(Row{}, err, unknown), p.p.rec.ID)
		}
	}
	w.settle(false, false, owed)
	return err
}

// commit stores one batch with the carried corrections, answers all its
// records and returns how many rows it inserted. Every record of a failed
// batch gets the error: none is reported stored unless its transaction
// committed.
func (w *Writer) commit(batch []*pending) (inserted int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CommitTimeout)
	defer cancel()
	if w.opts.OnCommit != nil {
		start := time.Now()
		defer func() {
			rows := len(batch)
			if inserted > 0 {
				rows = inserted // corrections included
			}
			w.opts.OnCommit(rows, time.Since(start), err)
		}()
	}
	var owed []carried
	all := w.dedupe(batch)
	fail := func(err error, unknown bool) (int, error) {
		return 0, w.failBatch(len(batch), all, owed, err, unknown)
	}
	if err := w.guard(); err != nil {
		return fail(err, false)
	}
	reread := w.stale
	if w.stale {
		if err := w.reload(ctx); err != nil {
			return fail(err, false)
		}
	}
	if err := w.checkCheckpoint(ctx); err != nil {
		return fail(err, false)
	}
	carriedFixes, err := w.takeCarried(ctx, reread)
	if err != nil {
		return fail(err, false)
	}
	// Sealed as late as possible: a caller who gives up before this point
	// gets its correction in its record's transaction.
	records := all
	for _, p := range records {
		for _, c := range p.seal() {
			all = append(all, &pending{p: c, isFix: true, of: p})
		}
	}
	all = append(all, carriedFixes...)
	return w.store(ctx, len(batch), all, owed, true, reread)
}

// store inserts all (records, with the corrections they carry) and
// answers them; a record whose ID is already stored is answered with the
// stored row or ErrConflict and the rest rechained (withoutStored).
// tookCarry says the batch holds every certain carried correction, so
// they are settled when it commits.
func (w *Writer) store(ctx context.Context, n int, all []*pending, owed []carried, tookCarry, reread bool) (int, error) {
	fail := func(err error, unknown bool) (int, error) {
		return 0, w.failBatch(n, all, owed, err, unknown)
	}
	for attempt := 0; ; attempt++ {
		if len(all) == 0 {
			w.settle(tookCarry, false, owed)
			return 0, nil
		}
		committedAt, dup, err := w.insert(ctx, all)
		if err != nil {
			return fail(err, errors.Is(err, errUnknownOutcome))
		}
		if !dup {
			owed = w.answerStored(all, committedAt, owed)
			last := all[len(all)-1].row
			w.lastSeq, w.lastHash = last.Seq, last.Hash
			w.settle(tookCarry, reread, owed)
			return len(all), nil
		}
		// Some IDs are already stored (a retry of a Write whose commit was
		// reported failed, or another writer's): answer them and chain the
		// rest without them.
		if attempt == 2 {
			return fail(errors.New("record IDs keep colliding with concurrent inserts"), false)
		}
		var fixed []prepared
		if all, fixed, err = w.withoutStored(ctx, all); err != nil {
			return fail(err, false)
		}
		owed = owe(owed, fixed, "")
	}
}

// dedupe keeps the first record of each ID: a later one with the same
// identity follows its answer, one with another identity is its rival.
func (w *Writer) dedupe(batch []*pending) []*pending {
	live := make([]*pending, 0, len(batch))
	byID := make(map[string]*pending, len(batch))
	for _, p := range batch {
		first, ok := byID[p.p.rec.ID]
		switch {
		case !ok:
			byID[p.p.rec.ID] = p
			live = append(live, p)
		case sameIdentity(&first.p.rec, first.p.ctxJSON, &p.p.rec, p.p.ctxJSON):
			first.followers = append(first.followers, p)
			w.dups.Add(1)
		default: // settled against whatever ends up stored (answerRivals)
			first.rivals = append(first.rivals, p)
		}
	}
	return live
}

// withoutStored answers the records whose ID is already stored, with the
// stored row when the identity is the same (an idempotent retry) and with
// ErrConflict when it is not, and returns the rest to chain again, with
// the corrections owed by callers who gave up during this commit. A
// correction leaves with a conflicting record: that row is not its record.
func (w *Writer) withoutStored(ctx context.Context, all []*pending) ([]*pending, []prepared, error) {
	ids := make([]string, len(all))
	for i, p := range all {
		ids[i] = p.p.rec.ID
	}
	stored, err := lookup(ctx, w.pool, ids)
	if err != nil {
		return nil, nil, err
	}
	var owed []prepared
	rest := all[:0]
	for _, p := range all {
		s, ok := stored[p.p.rec.ID]
		switch {
		case !ok:
			if !p.isFix || p.of == nil || !p.of.conflict {
				rest = append(rest, p)
			}
		case p.isFix: // a carried correction that landed with an unknown outcome
		case sameIdentity(&p.p.rec, p.p.ctxJSON, &s.Record, s.ctxJSON):
			w.dups.Add(1)
			owed = append(owed, w.answerRivals(p, &s, nil)...)
			owed = append(owed, p.answer(s.Row, nil, false)...)
		default:
			w.conflicts.Add(int64(1 + len(p.followers)))
			p.conflict = true
			owed = append(owed, w.answerRivals(p, &s, nil)...)
			if c, ok := w.conflictRow(&p.p, &s.Row); ok {
				owed = append(owed, c)
			}
			p.answer(Row{}, conflict(p.p.rec.ID), false)
		}
	}
	clear(all[len(rest):])
	return rest, owed, nil
}

// answerRivals answers the records that shared p's ID in this batch with
// another identity: the error of p's failed batch, else the stored row
// when they match it (stored is set when p did not), else ErrConflict.
func (w *Writer) answerRivals(p *pending, stored *storedRow, err error) (owed []prepared) {
	for _, r := range p.rivals {
		switch {
		case err != nil:
			r.answer(Row{}, err, false)
		case stored != nil && sameIdentity(&r.p.rec, r.p.ctxJSON, &stored.Record, stored.ctxJSON):
			w.dups.Add(1)
			owed = append(owed, r.answer(stored.Row, nil, false)...)
		default:
			w.conflicts.Add(1)
			var st *Row
			if stored != nil {
				st = &stored.Row
			}
			if c, ok := w.conflictRow(&r.p, st); ok {
				owed = append(owed, c)
			}
			r.answer(Row{}, conflict(r.p.rec.ID), false)
		}
	}
	p.rivals = nil
	return owed
}

func conflict(id string) error { return fmt.Errorf("%w (id %s)", ErrConflict, id) }

// sameIdentity tells an idempotent retry from a different record under a
// known ID: what the record is about must match; what it says about it
// (time, outcome, reason, message, policies, revision) may differ, since
// a retry may be decided anew. Org and skill version are left out too: the
// gate resolves them from its snapshot, so a retry decided after the agent
// changed (suspended: no skill version) would otherwise look forged.
func sameIdentity(a *Record, actx []byte, b *Record, bctx []byte) bool {
	return a.Kind == b.Kind && a.Actor == b.Actor && a.AgentUID == b.AgentUID &&
		a.AgentNamespace == b.AgentNamespace && a.AgentName == b.AgentName &&
		a.Action == b.Action && bytes.Equal(actx, bctx)
}

// answerStored answers the records of a committed batch with their rows
// and returns the corrections owed by callers who gave up meanwhile.
func (w *Writer) answerStored(all []*pending, committedAt time.Time, owed []carried) []carried {
	// The head and the counts move before anyone is answered: a caller that
	// checkpoints right after its Write returns must find its row in them.
	last := all[len(all)-1].row
	w.setHead(last.Seq, last.Hash)
	w.rows.Add(int64(len(all)))
	w.batches.Add(1)
	for _, p := range all {
		p.row.CommittedAt = committedAt
		if p.isFix {
			w.fixes.Add(1)
		} else {
			owed = owe(owed, w.answerRivals(p, &storedRow{Row: p.row, ctxJSON: p.p.ctxJSON}, nil), "")
			owed = owe(owed, p.answer(p.row, nil, false), "")
		}
	}
	return owed
}
