package chron

// Corrections. A record can be stored although its caller was told
// otherwise: the caller's wait ended (the gate answers DENY after its write
// timeout) while the record was queued or being committed, or the commit
// failed after the batch reached the server and no answer came, so its
// outcome is unknown. Record.Correction builds the row that says what the
// caller was told, and the writer stores it:
//
//   - in the record's own transaction when the caller gave up before the
//     batch's INSERT began: both rows land or neither;
//   - otherwise in a later batch, from the writer's own list (carry), never
//     through the bounded queue: retried with every batch, or alone after a
//     backoff, until it commits; Close drains it.
//
// An unknown outcome is settled by the next batch, after it re-reads the
// head of the stream: the record's ID found, the correction is stored; not
// found, the first batch that then commits takes the failed batch's first
// seq, so UNIQUE (stream, seq) keeps the record from ever landing and the
// correction is dropped. (A second live writer on the same stream, which
// is unsupported, would void that argument.)
//
// Memory: a correction exists only for a record that is queued, in the
// batch or stored, one per caller. The carry list is capped at QueueSize:
// while it is full the writer takes no new records (Writes fail with
// ErrOverloaded), and one batch adds at most its own records' worth, so
// corrections never outnumber 2×(QueueSize + MaxBatch).
//
// The one gap: the process ends after a record commits and before its
// carried correction does (a crash, SIGKILL, or Close giving up on a
// database that stays down). Chron then shows the record without saying
// its caller was refused; the caller's log and Close's error say so.

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

type pending struct {
	p         prepared
	fix       func(Record) Record // Record.Correction
	claim     *Claim              // Record.Claim
	orig      *prepared           // a claim's p before a lost claim rewrote it (approval.go)
	done      chan struct{}       // nil for corrections: nobody waits for them
	followers []*pending          // same ID and identity later in the same batch: same answer
	rivals    []*pending          // same ID, other identity, later in the same batch

	// Owned by the loop goroutine.
	isFix    bool     // a correction, not a caller's record
	of       *pending // for a correction sealed with its record: that record
	conflict bool     // the ID is stored with another identity

	mu       sync.Mutex // guards the rest against the caller giving up
	row      Row
	err      error
	answered bool
	gaveUp   bool
	corr     *prepared // the correction of a caller who gave up, not yet in a batch
}

// carried is a correction waiting for a later batch.
type carried struct {
	p      prepared
	unsure string // the corrected record's ID while its commit's outcome is unknown
	absent bool   // this batch's lookup did not find that record
}

// each calls f for p and its followers.
func (p *pending) each(f func(*pending)) {
	f(p)
	for _, q := range p.followers {
		f(q)
	}
}

// abandon is Write's end when ctx ends first: the answer if it came
// meanwhile, else cause, with the caller's correction left for the writer.
func (p *pending) abandon(cause error) (Row, error) {
	var corr *prepared
	if p.fix != nil {
		corr = p.correction()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answered {
		return p.row, p.err
	}
	p.gaveUp, p.corr = true, corr
	return Row{}, cause
}

// correction builds and prepares p's correction; nil if it is invalid,
// which is the caller's bug and is not stored.
func (p *pending) correction() *prepared {
	fix := p.fix(p.p.rec)
	c, err := prepare(&fix)
	if err != nil {
		return nil
	}
	return &c
}

// seal is called as the batch's INSERT begins: it takes the corrections
// attached so far, which go into the same transaction as their record.
func (p *pending) seal() (early []prepared) {
	p.each(func(q *pending) {
		q.mu.Lock()
		if q.corr != nil {
			early = append(early, *q.corr)
			q.corr = nil
		}
		q.mu.Unlock()
	})
	return early
}

// answer gives p and its followers their result and returns the
// corrections owed for a later batch: those of callers who gave up during
// the commit (stored, or unknown) and, when the outcome is unknown, those
// of callers told the error. A correction sealed with its record needs
// nothing more: it landed with it or not at all.
func (p *pending) answer(row Row, err error, unknown bool) (owed []prepared) {
	p.each(func(q *pending) {
		q.mu.Lock()
		q.row, q.err, q.answered = row, err, true
		corr, gaveUp := q.corr, q.gaveUp
		q.corr = nil
		q.mu.Unlock()
		if q.done != nil {
			close(q.done)
		}
		switch {
		case err != nil && !unknown:
		case corr != nil:
			owed = append(owed, *corr)
		case unknown && !gaveUp && q.fix != nil:
			if c := q.correction(); c != nil {
				owed = append(owed, *c)
			}
		}
	})
	p.followers = nil
	return owed
}

// takeCarried returns the carried corrections to insert with this batch.
// Those whose record's outcome is unknown are looked up, and only in a
// batch that re-read the head (see the comment at the top).
func (w *Writer) takeCarried(ctx context.Context, reread bool) ([]*pending, error) {
	var ids []string
	for _, c := range w.carry {
		if c.unsure != "" {
			ids = append(ids, c.unsure)
		}
	}
	if len(ids) > 0 && reread {
		stored, err := lookup(ctx, w.pool, ids)
		if err != nil {
			return nil, err
		}
		for i := range w.carry {
			c := &w.carry[i]
			if c.unsure == "" {
				continue
			}
			if _, found := stored[c.unsure]; found {
				c.unsure = "" // the record is stored: the correction is owed
			} else {
				c.absent = true
			}
		}
	}
	var out []*pending
	for _, c := range w.carry {
		if c.unsure == "" {
			out = append(out, &pending{p: c.p, isFix: true})
		}
	}
	return out, nil
}

// settle updates the carry list after a batch and adds what it owes.
// When the batch's rows are stored (stored), so are the certain
// corrections it carried; when it inserted rows after re-reading the head
// (proof), the unsure ones found absent can never be needed. The rest
// stay, to be looked up again after the head is re-read.
func (w *Writer) settle(stored, proof bool, owed []carried) {
	kept := w.carry[:0]
	for _, c := range w.carry {
		if (stored && c.unsure == "") || (proof && c.absent) {
			continue
		}
		c.absent = false
		kept = append(kept, c)
	}
	clear(w.carry[len(kept):])
	w.carry = append(kept, owed...)
	for _, c := range w.carry {
		if c.unsure != "" {
			w.stale = true // the next batch must re-read the head to settle it
			break
		}
	}
	w.carriedN.Store(int64(len(w.carry)))
}

// owe turns corrections owed for record id into carry entries.
func owe(out []carried, fixes []prepared, unknownID string) []carried {
	for _, f := range fixes {
		out = append(out, carried{p: f, unsure: unknownID})
	}
	return out
}

// closeError reports the corrections Close gave up.
func (w *Writer) closeError(last error) {
	if last == nil {
		last = errors.New("their records' commits stayed of unknown outcome")
	}
	w.closeErr = fmt.Errorf("chron: closed with %d corrections not stored: %w", len(w.carry), last)
}
