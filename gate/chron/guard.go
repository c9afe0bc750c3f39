package chron

// What a writer checks and records beyond its rows: its right to the
// stream (Guard), the stream against its last signed checkpoint, the head
// it publishes, conflict rows, and ids nobody can predict.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// Head is where a stream ends: its last seq and that row's hash.
type Head struct {
	Seq  int64
	Hash string
}

// Head returns the stream's head as of the last committed batch (or the
// last read of it); false until the writer has read or written it.
func (w *Writer) Head() (Head, bool) {
	h := w.head.Load()
	if h == nil {
		return Head{}, false
	}
	return *h, true
}

// Tampered is the ErrTampered the writer refuses to write with, or nil.
func (w *Writer) Tampered() error {
	if e := w.tampered.Load(); e != nil {
		return *e
	}
	return nil
}

// admit runs before every batch: the guard, then (once the head is known)
// the check against the stream's checkpoint.
func (w *Writer) guard() error {
	if e := w.Tampered(); e != nil {
		return e
	}
	if w.opts.Guard != nil {
		return w.opts.Guard()
	}
	return nil
}

// checkCheckpoint compares the stream with opts.Checkpoint once, before
// the writer's first row. A database error leaves it for the next batch.
func (w *Writer) checkCheckpoint(ctx context.Context) error {
	cp := w.opts.Checkpoint
	if cp == nil || w.cpChecked {
		return nil
	}
	p, err := checkpointProblem(ctx, w.pool, *cp)
	if err != nil {
		return err
	}
	w.cpChecked = true
	if p == nil {
		return nil
	}
	e := fmt.Errorf("%w: %s; the writer refuses to continue stream %q: run `claiim chron verify` and follow "+
		"docs/security.md (Verifying Chron, when verify fails)", ErrTampered, p.What, w.opts.Stream)
	w.tampered.Store(&e)
	if w.opts.OnTamper != nil {
		w.opts.OnTamper(e)
	}
	return e
}

func (w *Writer) setHead(seq int64, hash string) { w.head.Store(&Head{Seq: seq, Hash: hash}) }

// conflictRow is the chron.conflict row recording that attempt was refused
// because its id is stored with other content (stored; nil when the rival
// is in the same batch). Its id is derived from what was refused, so a
// retried conflicting record adds no second row; under the writer's key,
// nobody can pre-empt it.
func (w *Writer) conflictRow(attempt *prepared, stored *Row) (prepared, bool) {
	a := &attempt.rec
	ctx := map[string]any{"id": a.ID, "kind": string(a.Kind), "action": a.Action, "actor": a.Actor,
		"agent": a.AgentNamespace + "/" + a.AgentName}
	where := "in the same batch"
	if stored != nil {
		ctx["stored_stream"], ctx["stored_seq"], ctx["stored_kind"] = stored.Stream, stored.Seq, string(stored.Kind)
		where = fmt.Sprintf("at stream %s seq %d", stored.Stream, stored.Seq)
	}
	digest := sha256.Sum256(attempt.body)
	rec := Record{
		ID:      w.EventID("chron.conflict", w.opts.Stream, a.ID, hex.EncodeToString(digest[:])),
		Kind:    KindConflict,
		Outcome: OutcomeDeny,
		Reason:  ReasonIDConflict,
		Message: fmt.Sprintf("a %s record was refused: its id %s is already stored with different content (%s); "+
			"a pre-empted or forged row, or an id reused by mistake", a.Kind, a.ID, where),
		Context: ctx,
		Replica: a.Replica,
	}
	p, err := prepare(&rec)
	if err != nil {
		return prepared{}, false
	}
	if w.opts.OnConflict != nil {
		w.opts.OnConflict(a.ID)
	}
	return p, true
}

// ReasonIDConflict is the reason of a chron.conflict row.
const ReasonIDConflict = "ID_CONFLICT"

// EventID derives a record id from parts with HMAC-SHA256 under the
// writer's id key: the same parts give the same id (a retried reconcile,
// a restarted manager), and nobody without the key can compute it in
// advance to pre-empt it. The id is a version 8 (custom) UUID.
func (w *Writer) EventID(parts ...string) string {
	mac := hmac.New(sha256.New, w.ids)
	var n [8]byte
	for _, p := range parts { // length-prefixed: ("a","bc") ≠ ("ab","c")
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		mac.Write(n[:])
		mac.Write([]byte(p))
	}
	var u uuid.UUID
	copy(u[:], mac.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}

// idKey is EventID's key: IDKey, else one derived from the chain key,
// else random for this process (ids stay unpredictable, but are stable
// only until a restart).
func idKey(opts *WriterOptions) ([]byte, error) {
	switch {
	case len(opts.IDKey) > 0:
		return opts.IDKey, nil
	case opts.Key != nil:
		mac := hmac.New(sha256.New, opts.Key.Secret)
		mac.Write([]byte("claiim chron event ids"))
		return mac.Sum(nil), nil
	}
	k := make([]byte, keyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("chron: NewWriter: %w", err)
	}
	return k, nil
}
