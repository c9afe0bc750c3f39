package chron

// Writer's API: options, the queue a Write waits in, Close and Stats. The
// batching goroutine is in batch.go, the insert in insert.go, the chain
// head in head.go.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WriterOptions configures a Writer. Zero values take the defaults.
type WriterOptions struct {
	// Stream is this writer's chain: one per gate replica or manager
	// instance. Two live writers on one stream make each other's batches
	// fail (UNIQUE (stream, seq)); they never fork the chain.
	Stream string
	// MaxBatch bounds the rows per transaction. Default 256.
	MaxBatch int
	// MaxWait is how long the first record of a batch waits for company.
	// Zero (the default) adapts: no wait while records come one at a time,
	// and up to one commit's duration (at most 2ms) while they come
	// together, so an idle gate answers at once and a busy one commits
	// larger batches (BenchmarkBatchWait, docs/benchmarks.md).
	MaxWait time.Duration
	// QueueSize bounds the records waiting for a batch. When it is full,
	// Write fails at once with ErrOverloaded. Default 4096.
	QueueSize int
	// CommitTimeout bounds each batch's transaction, including getting a
	// connection. A Write waits for at most the batch ahead of it and its
	// own; when the database is unreachable, the queued records fail with
	// the failing batch rather than each waiting out its own timeout.
	// Default 5s.
	CommitTimeout time.Duration
	// OnCommit, if set, is called after each batch with its size, how long
	// its transaction took, and its error (nil when committed). It feeds
	// metrics; it must not block.
	OnCommit func(rows int, took time.Duration, err error)

	// Key chains new rows in format v2 (HMAC-SHA256). Without it rows are
	// format v1, unkeyed: for tests and benchmarks only; the components
	// refuse to start without a key.
	Key *ChainKey
	// IDKey derives EventID's ids (the manager's event-id key).
	IDKey []byte
	// Guard, if set, is asked before every batch; an error fails the batch
	// and nothing is written. The stream's lease holder uses it to stop
	// writing the moment it can no longer be sure it holds the stream.
	Guard func() error
	// Checkpoint is the stream's last signed checkpoint, its signature
	// already checked. Before its first row the writer checks the stream
	// against it: rows cut below it, or a different hash at its seq, is
	// tampering, and the writer refuses to write (ErrTampered) rather than
	// chain new rows onto a doctored stream.
	Checkpoint *Checkpoint
	// OnTamper is called once when the check against Checkpoint fails.
	OnTamper func(err error)
	// OnConflict is called for each record refused with ErrConflict, after
	// its chron.conflict row is queued. It must not block.
	OnConflict func(id string)

	method insertMethod // benchmarks compare the two; the default won
}

// WriterStats are cumulative counters of a Writer, plus three gauges.
type WriterStats struct {
	RowsCommitted    int64 // rows this writer inserted, corrections included
	BatchesCommitted int64 // transactions committed
	BatchesFailed    int64
	RowsFailed       int64 // records whose Write got a commit error
	Duplicates       int64 // records answered with the row already stored under their ID
	Conflicts        int64 // records refused with ErrConflict
	Overloaded       int64 // Writes refused with ErrOverloaded
	Corrections      int64 // correction rows committed (Record.Correction)
	Queued           int64 // gauge: records waiting for a batch
	InFlight         int64 // gauge: records taken into the batch being formed or committed
	Carried          int64 // gauge: corrections waiting for a later batch
}

var (
	// ErrOverloaded means the queue is full; the record was not stored and
	// the caller must treat the decision as failed (the gate answers DENY).
	ErrOverloaded = errors.New("chron: writer overloaded, record not stored")
	// ErrClosed means Write was called after Close.
	ErrClosed = errors.New("chron: writer closed")
	// ErrConflict means the record's ID is already stored with a different
	// identity (sameIdentity): a forged or pre-empted row, or an ID reused
	// by mistake. The record was not stored; it is never reported as
	// success, and the writer records a chron.conflict row in its stream.
	ErrConflict = errors.New("chron: id already stored with different content")
	// ErrTampered means the stream does not match its last signed
	// checkpoint: the writer will not continue it.
	ErrTampered = errors.New("chron: stream does not match its signed checkpoint")
)

// Writer appends records to one stream with group commit: a single
// goroutine takes queued records in batches, chains them and inserts each
// batch in one transaction, then answers every caller of the batch.
type Writer struct {
	pool  *pgxpool.Pool
	opts  WriterOptions
	chain chainer
	ids   []byte // EventID's key

	mu     sync.RWMutex // guards closed against sends on the closed queue
	closed bool
	queue  chan *pending
	done   chan struct{}

	// Owned by the loop goroutine.
	lastBatch  int           // rows in the last batch
	lastCommit time.Duration // how long it took
	lastSeq    int64
	lastHash   string
	stale      bool // the head is unknown (start, or a failed commit): re-read it first
	noCopy     bool // COPY was refused (row-level security): insert with one INSERT instead
	params     batchParams
	buf        []byte
	carry      []carried     // corrections for a later batch (correction.go)
	retryIn    time.Duration // how long carried corrections wait when no record comes
	closeErr   error         // set before done closes: corrections Close could not store
	lastErr    error         // the last batch's error, for closeErr
	cpChecked  bool          // the stream was checked against opts.Checkpoint

	head     atomic.Pointer[Head] // the last committed head, for checkpoints
	tampered atomic.Pointer[error]

	rows, batches, failedBatches, failedRows, dups, conflicts, overloaded, fixes, inFlight, carriedN atomic.Int64
	// busySince is when the loop took up its current batch (unix nanos; 0
	// while it waits for records): Stalled reads it.
	busySince atomic.Int64
}

// NewWriter starts the batching goroutine; Close stops it. It does not touch
// the database: the first batch reads the head of the stream (its last seq
// and hash), so the chain continues where a previous writer of this stream
// stopped, and a component starts while PostgreSQL is down. Until it is
// back, Writes fail as any commit does. ctx is not used.
func NewWriter(_ context.Context, pool *pgxpool.Pool, opts WriterOptions) (*Writer, error) {
	if pool == nil {
		return nil, errors.New("chron: NewWriter: pool is nil")
	}
	if opts.Stream == "" || cleanText(opts.Stream) != opts.Stream {
		return nil, errors.New("chron: NewWriter: Stream must be non-empty UTF-8 without NUL")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 5 * time.Second
	}
	if k := opts.Key; k != nil && (len(k.Secret) < 16 || k.ID == "" || ScopeOf(opts.Stream) != k.Scope) {
		return nil, fmt.Errorf("chron: NewWriter: the chain key must be at least 16 bytes, named, and of the stream's component (key scope %q, stream %q)", k.Scope, opts.Stream)
	}
	if cp := opts.Checkpoint; cp != nil && cp.Stream != opts.Stream {
		return nil, fmt.Errorf("chron: NewWriter: checkpoint of stream %q given for stream %q", cp.Stream, opts.Stream)
	}
	ids, err := idKey(&opts)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		pool:  pool,
		opts:  opts,
		chain: newChainer(opts.Stream, opts.Key),
		ids:   ids,
		queue: make(chan *pending, opts.QueueSize),
		done:  make(chan struct{}),
		stale: true,
	}
	go w.run()
	return w, nil
}

// Write stores r and returns once its transaction has committed, with the
// stored Row (Seq, Hash, masked Context…). It fills in r.ID and r.Time when
// they are empty, so retrying the same *Record after an error is idempotent:
// a Write whose ID is already stored with the same identity (sameIdentity)
// stores nothing and returns the stored row, whose Outcome, Reason and
// Message may differ from r's; with another identity it fails with
// ErrConflict.
//
// An error means the row is not known to be stored. In particular, if ctx
// ends while the record waits, Write returns ctx.Err() at once, but the
// record stays in its batch and may still commit; retry with the same ID to
// learn its fate. r.Correction is for that case: if the record is stored
// although Write returned an error (ctx ended, or the commit's outcome was
// unknown), the writer stores the correction too, and no bounded queue
// stands in its way (correction.go).
func (w *Writer) Write(ctx context.Context, r *Record) (Row, error) { return w.WriteWithin(ctx, r, 0) }

// WriteWithin is Write with its wait also bounded by d (none if d <= 0):
// on a busy gate a context.WithTimeout per decision, with its timer and
// its registration in the request's context, was 2.5% of the gate's CPU.
// Past d it returns context.DeadlineExceeded, as that context would.
func (w *Writer) WriteWithin(ctx context.Context, r *Record, d time.Duration) (Row, error) {
	if r == nil {
		return Row{}, fmt.Errorf("%w: nil record", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return Row{}, err
	}
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	p, err := prepare(r)
	if err != nil {
		return Row{}, err
	}
	if r.Claim != nil {
		if err := r.Claim.check(); err != nil {
			return Row{}, err
		}
	}
	pd := &pending{p: p, fix: r.Correction, claim: r.Claim, done: make(chan struct{})}
	if r.Claim != nil {
		o := p // only a claim's record can be rewritten; others keep p alone
		pd.orig = &o
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Row{}, ErrClosed
	}
	select {
	case w.queue <- pd:
		w.mu.RUnlock()
	default:
		w.mu.RUnlock()
		w.overloaded.Add(1)
		return Row{}, ErrOverloaded
	}
	if d <= 0 {
		select {
		case <-pd.done:
			return pd.row, pd.err
		case <-ctx.Done():
			return pd.abandon(ctx.Err())
		}
	}
	t := waitTimer(d)
	defer freeTimer(t)
	select {
	case <-pd.done:
		return pd.row, pd.err
	case <-ctx.Done():
		return pd.abandon(ctx.Err())
	case <-t.C:
		return pd.abandon(context.DeadlineExceeded)
	}
}

// timers are WriteWithin's, reused: since Go 1.23 a stopped or reset
// timer delivers no stale tick.
var timers sync.Pool

func waitTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func freeTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

// Close stops accepting records, commits what is queued and the corrections
// carried, and returns when the last batch is answered. If the database
// still refuses carried corrections a commit timeout after Close began,
// Close gives them up (and fails what is still queued) and says how many
// in its error: it returns within three commit timeouts.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	return w.closeErr
}

// Stalled reports whether the writer has been on one batch for more than
// three commit timeouts. Every batch is bounded by CommitTimeout (and
// MaxWait), so one that outlives several means the writer is wedged:
// decisions can only fail closed until the process restarts, which is
// what the gate's liveness check asks for.
func (w *Writer) Stalled(now time.Time) bool {
	since := w.busySince.Load()
	return since != 0 && now.Sub(time.Unix(0, since)) > 3*w.opts.CommitTimeout
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		RowsCommitted:    w.rows.Load(),
		BatchesCommitted: w.batches.Load(),
		BatchesFailed:    w.failedBatches.Load(),
		RowsFailed:       w.failedRows.Load(),
		Duplicates:       w.dups.Load(),
		Conflicts:        w.conflicts.Load(),
		Overloaded:       w.overloaded.Load(),
		Corrections:      w.fixes.Load(),
		Queued:           int64(len(w.queue)),
		InFlight:         w.inFlight.Load(),
		Carried:          w.carriedN.Load(),
	}
}
