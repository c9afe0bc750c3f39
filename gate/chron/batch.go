package chron

// Group commit: the writer goroutine takes queued records in batches,
// commits each batch and answers its callers.

import (
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
	for {
		first, ok := <-w.queue
		if !ok {
			return
		}
		w.inFlight.Store(1)
		w.busySince.Store(time.Now().UnixNano())
		batch = w.fill(append(batch[:0], first), timer)
		start := time.Now()
		err := w.commit(batch)
		w.lastBatch, w.lastCommit = len(batch), time.Since(start)
		w.busySince.Store(0)
		w.inFlight.Store(0)
		clear(batch) // let answered records be collected
		if err != nil && !serverAnswered(err) {
			// The database is unreachable: fail what is queued now instead of
			// letting each record wait for its own timeout in turn.
			w.failQueued(err)
		}
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
			p.finish(Row{}, fmt.Errorf("chron: record not stored: %w", err))
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

// commit stores one batch and answers all its records. Every record of a
// failed batch gets the error: none is reported stored unless its
// transaction committed.
func (w *Writer) commit(batch []*pending) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CommitTimeout)
	defer cancel()
	if w.opts.OnCommit != nil {
		start := time.Now()
		defer func() { w.opts.OnCommit(len(batch), time.Since(start), err) }()
	}

	// The same ID twice in one batch is one row: later copies follow the first.
	live := make([]*pending, 0, len(batch))
	byID := make(map[string]*pending, len(batch))
	for _, p := range batch {
		if first, ok := byID[p.p.rec.ID]; ok {
			first.followers = append(first.followers, p)
			w.dups.Add(1)
			continue
		}
		byID[p.p.rec.ID] = p
		live = append(live, p)
	}
	fail := func(err error) error {
		w.stale = true
		w.failedBatches.Add(1)
		err = fmt.Errorf("chron: batch of %d records not committed: %w", len(batch), err)
		for _, p := range live {
			w.failedRows.Add(int64(1 + len(p.followers)))
			p.finish(Row{}, err)
		}
		return err
	}
	if w.stale {
		if err := w.reload(ctx); err != nil {
			return fail(err)
		}
	}
	for attempt := 0; ; attempt++ {
		committedAt, dup, err := w.insert(ctx, live)
		if err != nil {
			return fail(err)
		}
		if !dup {
			for _, p := range live {
				p.row.CommittedAt = committedAt
				p.finish(p.row, nil)
			}
			if n := len(live); n > 0 {
				w.lastSeq, w.lastHash = live[n-1].row.Seq, live[n-1].row.Hash
			}
			w.rows.Add(int64(len(live)))
			w.batches.Add(1)
			return nil
		}
		// Some IDs are already stored (a retry of a Write whose commit was
		// reported failed, or another writer's): answer them with the stored
		// row and chain the rest without them.
		if attempt == 2 {
			return fail(errors.New("record IDs keep colliding with concurrent inserts"))
		}
		ids := make([]string, len(live))
		for i, p := range live {
			ids[i] = p.p.rec.ID
		}
		stored, err := lookup(ctx, w.pool, ids)
		if err != nil {
			return fail(err)
		}
		rest := live[:0]
		for _, p := range live {
			if row, ok := stored[p.p.rec.ID]; ok {
				w.dups.Add(1)
				p.finish(row, nil)
			} else {
				rest = append(rest, p)
			}
		}
		live = rest
		if len(live) == 0 {
			return nil
		}
	}
}
