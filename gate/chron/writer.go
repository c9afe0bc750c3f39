package chron

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

	method insertMethod // benchmarks compare the two; the default won
}

// WriterStats are cumulative counters of a Writer, plus two gauges.
type WriterStats struct {
	RowsCommitted    int64 // rows this writer inserted
	BatchesCommitted int64 // transactions committed
	BatchesFailed    int64
	RowsFailed       int64 // records whose Write got a commit error
	Duplicates       int64 // records answered with a row already stored under their ID
	Overloaded       int64 // Writes refused with ErrOverloaded
	Queued           int64 // gauge: records waiting for a batch
	InFlight         int64 // gauge: records taken into the batch being formed or committed
}

var (
	// ErrOverloaded means the queue is full; the record was not stored and
	// the caller must treat the decision as failed (the gate answers DENY).
	ErrOverloaded = errors.New("chron: writer overloaded, record not stored")
	// ErrClosed means Write was called after Close.
	ErrClosed = errors.New("chron: writer closed")
)

type insertMethod int

// maxLinger bounds the adaptive batch wait.
const maxLinger = 2 * time.Millisecond

// BenchmarkInsertMethod decided the default: COPY alone in autocommit
// (two round trips per batch) commits about twice the rows/s of the unnest
// INSERT, in a transaction or not (docs/benchmarks.md). It has no ON
// CONFLICT, so a known ID surfaces as a primary-key violation, handled the
// same way.
const (
	insertCopy   insertMethod = iota // COPY FROM STDIN (binary)
	insertUnnest                     // multi-row INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO NOTHING
	insertSingle                     // one autocommit INSERT … SELECT FROM unnest(…): one round trip
)

func (m insertMethod) String() string {
	switch m {
	case insertUnnest:
		return "unnest"
	case insertSingle:
		return "single"
	}
	return "copy"
}

// Writer appends records to one stream with group commit: a single
// goroutine takes queued records in batches, chains them and inserts each
// batch in one transaction, then answers every caller of the batch.
type Writer struct {
	pool   *pgxpool.Pool
	opts   WriterOptions
	prefix []byte

	mu     sync.RWMutex // guards closed against sends on the closed queue
	closed bool
	queue  chan *pending
	done   chan struct{}

	// Owned by the loop goroutine.
	lastBatch  int           // rows in the last batch
	lastCommit time.Duration // how long it took
	lastSeq    int64
	lastHash   string
	stale      bool // the last commit failed: re-read the chain head first
	buf        []byte

	rows, batches, failedBatches, failedRows, dups, overloaded, inFlight atomic.Int64
}

type pending struct {
	p         prepared
	row       Row
	err       error
	done      chan struct{}
	followers []*pending // same ID later in the same batch: same answer
}

func (p *pending) finish(row Row, err error) {
	p.row, p.err = row, err
	close(p.done)
	for _, f := range p.followers {
		f.finish(row, err)
	}
	p.followers = nil
}

// NewWriter reads the head of the stream (its last seq and hash) so that the
// chain continues where a previous writer of this stream stopped, and starts
// the batching goroutine. ctx bounds only that first read; Close stops the
// writer.
func NewWriter(ctx context.Context, pool *pgxpool.Pool, opts WriterOptions) (*Writer, error) {
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
	w := &Writer{
		pool:   pool,
		opts:   opts,
		prefix: streamPrefix(opts.Stream),
		queue:  make(chan *pending, opts.QueueSize),
		done:   make(chan struct{}),
	}
	if err := w.reload(ctx); err != nil {
		return nil, err
	}
	go w.run()
	return w, nil
}

// Write stores r and returns once its transaction has committed, with the
// stored Row (Seq, Hash, masked Context…). It fills in r.ID and r.Time when
// they are empty, so retrying the same *Record after an error is idempotent:
// a Write whose ID is already stored returns that row and stores nothing.
//
// An error means the row is not known to be stored. In particular, if ctx
// ends while the record waits, Write returns ctx.Err() at once, but the
// record stays in its batch and may still commit; retry with the same ID to
// learn its fate.
func (w *Writer) Write(ctx context.Context, r *Record) (Row, error) {
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
	pd := &pending{p: p, done: make(chan struct{})}
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
	select {
	case <-pd.done:
		return pd.row, pd.err
	case <-ctx.Done():
		return Row{}, ctx.Err()
	}
}

// Close stops accepting records, commits what is queued, and returns when
// the last batch is answered.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	return nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		RowsCommitted:    w.rows.Load(),
		BatchesCommitted: w.batches.Load(),
		BatchesFailed:    w.failedBatches.Load(),
		RowsFailed:       w.failedRows.Load(),
		Duplicates:       w.dups.Load(),
		Overloaded:       w.overloaded.Load(),
		Queued:           int64(len(w.queue)),
		InFlight:         w.inFlight.Load(),
	}
}

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
		batch = w.fill(append(batch[:0], first), timer)
		start := time.Now()
		err := w.commit(batch)
		w.lastBatch, w.lastCommit = len(batch), time.Since(start)
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

// reload reads the chain head of the stream: after a failed commit the
// batch may or may not have landed, so memory cannot be trusted.
func (w *Writer) reload(ctx context.Context) error {
	var seq int64
	var hash string
	err := w.pool.QueryRow(ctx,
		"SELECT seq, hash FROM chron_records WHERE stream = $1 ORDER BY seq DESC LIMIT 1", w.opts.Stream).Scan(&seq, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		seq, hash = 0, GenesisHash
	case err != nil:
		return fmt.Errorf("chron: reading the head of stream %q: %w", w.opts.Stream, err)
	}
	w.lastSeq, w.lastHash, w.stale = seq, hash, false
	return nil
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

// insert chains live after the stream head and inserts it in one
// transaction. dup reports that some ID already exists; then nothing was
// committed. committedAt is zero for COPY, which doesn't read it back.
func (w *Writer) insert(ctx context.Context, live []*pending) (committedAt time.Time, dup bool, err error) {
	seq, prev := w.lastSeq, w.lastHash
	for _, p := range live {
		seq++
		var h string
		h, w.buf = chainHash(w.buf, w.prefix, prev, seq, p.p.body)
		p.row = Row{Record: p.p.rec, Stream: w.opts.Stream, Seq: seq, PrevHash: prev, Hash: h}
		prev = h
	}
	if w.opts.method == insertCopy {
		// COPY is one statement: in autocommit it is atomic, and durable
		// when it returns. Two round trips instead of five (BEGIN, a read
		// of now(), COPY, COMMIT), which is most of a small batch's time.
		// A known ID fails the whole COPY (primary key), so nothing lands.
		_, err := w.pool.CopyFrom(ctx, pgx.Identifier{"chron_records"}, insertColumns, pgx.CopyFromSlice(len(live), func(i int) ([]any, error) {
			return copyValues(&live[i].row, &live[i].p), nil
		}))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "chron_records_pkey" {
			return time.Time{}, true, nil
		}
		return time.Time{}, false, err
	}
	if w.opts.method == insertSingle {
		// One statement in autocommit is atomic and durable when it returns:
		// one round trip instead of BEGIN, the insert and COMMIT. A known ID
		// fails the whole statement (no ON CONFLICT), so nothing lands and
		// the batch is rechained without it, as with COPY.
		var n int
		err := w.pool.QueryRow(ctx, singleSQL, unnestArgs(live)...).Scan(&n, &committedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "chron_records_pkey" {
			return time.Time{}, true, nil
		}
		if err != nil {
			return time.Time{}, false, err
		}
		if n != len(live) {
			return time.Time{}, false, fmt.Errorf("inserted %d rows of %d", n, len(live))
		}
		return committedAt.UTC(), false, nil
	}
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	// After a commit, Rollback is a no-op; after an error it releases the connection.
	defer func() { _ = tx.Rollback(ctx) }()
	var n int // insertUnnest
	if err := tx.QueryRow(ctx, unnestSQL, unnestArgs(live)...).Scan(&n, &committedAt); err != nil {
		return time.Time{}, false, err
	}
	if n != len(live) {
		return time.Time{}, true, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return time.Time{}, false, err
	}
	return committedAt.UTC(), false, nil
}

// insertColumns are the columns a writer fills; committed_at is the
// database's.
var insertColumns = []string{"id", "stream", "seq", "time", "kind", "actor", "agent_name", "agent_namespace",
	"agent_uid", "org", "action", "context", "outcome", "reason", "message", "anchor", "skill_version_id",
	"skill_digest", "policies", "skill_rules", "replica", "request_id", "prev_hash", "hash"}

// copyValues lists a row's column values. Every text column is a plain
// string (Kind too): unnestArgs sorts the values into arrays by their Go type.
func copyValues(r *Row, p *prepared) []any {
	return []any{r.ID, r.Stream, r.Seq, r.Time, string(r.Kind), r.Actor, r.AgentName, r.AgentNamespace,
		r.AgentUID, r.Org, r.Action, json.RawMessage(p.ctxJSON), r.Outcome, r.Reason, r.Message, r.Anchor,
		r.SkillVersionID, r.SkillDigest, json.RawMessage(p.polJSON), json.RawMessage(p.rulesJSON),
		r.Replica, r.RequestID, r.PrevHash, r.Hash}
}

// singleSQL is unnestSQL without ON CONFLICT, for autocommit.
var singleSQL = strings.Replace(unnestSQL, "ON CONFLICT (id) DO NOTHING ", "", 1)

// unnestSQL inserts a batch passed as one array per column. ON CONFLICT (id)
// DO NOTHING keeps a retried ID from failing the batch; the count tells the
// writer that it happened, so it can roll back and rechain without the gap.
var unnestSQL = func() string {
	var sel, params []string
	for i, c := range insertColumns {
		typ := "text[]"
		switch c {
		case "seq":
			typ = "bigint[]"
		case "time":
			typ = "timestamptz[]"
		}
		params = append(params, fmt.Sprintf("$%d::%s", i+1, typ))
		switch c {
		case "context", "policies", "skill_rules":
			sel = append(sel, "u."+c+"::jsonb")
		default:
			sel = append(sel, "u."+c)
		}
	}
	cols := strings.Join(insertColumns, ", ")
	return "WITH ins AS (INSERT INTO chron_records (" + cols + ")\n" +
		"SELECT " + strings.Join(sel, ", ") + "\n" +
		"FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + cols + ")\n" +
		"ON CONFLICT (id) DO NOTHING RETURNING 1)\n" +
		"SELECT count(*), now() FROM ins"
}()

// unnestArgs turns the batch into one array per column, in the order and
// with the types of copyValues.
func unnestArgs(live []*pending) []any {
	n := len(live)
	args := make([]any, len(insertColumns))
	for i, v := range copyValues(&live[0].row, &live[0].p) {
		switch v.(type) {
		case int64:
			args[i] = make([]int64, 0, n)
		case time.Time:
			args[i] = make([]time.Time, 0, n)
		default:
			args[i] = make([]string, 0, n)
		}
	}
	for _, p := range live {
		for i, v := range copyValues(&p.row, &p.p) {
			switch x := v.(type) {
			case int64:
				args[i] = append(args[i].([]int64), x)
			case time.Time:
				args[i] = append(args[i].([]time.Time), x)
			case string:
				args[i] = append(args[i].([]string), x)
			case json.RawMessage:
				args[i] = append(args[i].([]string), string(x))
			}
		}
	}
	return args
}
