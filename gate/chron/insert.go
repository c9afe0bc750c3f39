package chron

// Inserting one chained batch. COPY is the default; the two INSERT forms
// remain for BenchmarkInsertMethod, which compares them.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// insertMethod is how a batch reaches the table.
type insertMethod int

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

// errUnknownOutcome marks an insert that failed after the batch reached
// the server and before its answer came back: it may have committed.
var errUnknownOutcome = errors.New("outcome unknown")

// outcome wraps err with errUnknownOutcome unless it shows that nothing was
// stored: the server's own error (the statement failed, so in autocommit
// or at COMMIT nothing landed), or a failure before anything was sent. A
// FATAL or PANIC error is the server ending the connection, which it may
// do after the commit (pg_terminate_backend, a shutdown): unknown.
func outcome(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || pgconn.SafeToRetry(err) {
		return err
	}
	if errors.As(err, &pgErr) {
		switch cmp.Or(pgErr.SeverityUnlocalized, pgErr.Severity) {
		case "FATAL", "PANIC":
		default:
			return err
		}
	}
	return fmt.Errorf("%w: %w", errUnknownOutcome, err)
}

// insert chains live after the stream head and inserts it in one
// transaction. dup reports that some ID already exists; then nothing was
// committed. committedAt is zero for COPY, which doesn't read it back. An
// error wraps errUnknownOutcome when the batch may have landed.
func (w *Writer) insert(ctx context.Context, live []*pending) (committedAt time.Time, dup bool, err error) {
	committedAt, dup, err = w.insertOnce(ctx, live)
	if statementLost(err) && !errors.Is(err, errUnknownOutcome) {
		// Nothing ran, and the connection that lost the statement is
		// closed: once more, on a new one, rather than fail the batch.
		committedAt, dup, err = w.insertOnce(ctx, live)
	}
	return committedAt, dup, err
}

func (w *Writer) insertOnce(ctx context.Context, live []*pending) (committedAt time.Time, dup bool, err error) {
	// A connection first, so that failing to get one (the database is
	// down) is known to have stored nothing.
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	defer func() {
		if statementLost(err) {
			// The session lost its prepared statements (the batch's, or a
			// claim's query pgx cached): the pool must not hand it out again.
			closeNow(conn.Conn().PgConn())
		}
		conn.Release()
	}()
	if claiming(live) {
		return w.insertClaiming(ctx, conn, live) // approval.go
	}
	w.chainRows(live)
	if w.opts.method == insertCopy && !w.noCopy {
		// COPY is one statement: in autocommit it is atomic, and durable
		// when it returns. Two round trips instead of five (BEGIN, a read
		// of now(), COPY, COMMIT), which is most of a small batch's time.
		// A known ID fails the whole COPY (primary key), so nothing lands.
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"chron_records"}, insertColumns, pgx.CopyFromSlice(len(live), func(i int) ([]any, error) {
			return copyValues(&live[i].row, &live[i].p), nil
		}))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "chron_records_pkey" {
			return time.Time{}, true, nil
		}
		if !copyRefusedByRLS(err) {
			return time.Time{}, false, outcome(err)
		}
		// PostgreSQL refuses COPY FROM into a table under row-level
		// security, which binds every writer role (0002_roles.sql);
		// nothing was stored. One INSERT per batch from here on.
		w.noCopy = true
	}
	if w.opts.method == insertSingle || w.noCopy {
		// One statement in autocommit is atomic and durable when it returns:
		// one round trip instead of BEGIN, the insert and COMMIT. A known ID
		// fails the whole statement (no ON CONFLICT), so nothing lands and
		// the batch is rechained without it, as with COPY.
		n, committedAt, err := w.params.execBatch(ctx, conn.Conn(), "chron_insert_single", singleSQL, live)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "chron_records_pkey" {
			return time.Time{}, true, nil
		}
		if err != nil {
			return time.Time{}, false, outcome(err)
		}
		if n != int64(len(live)) {
			return time.Time{}, false, fmt.Errorf("inserted %d rows of %d", n, len(live))
		}
		return committedAt.UTC(), false, nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	// After a commit, Rollback is a no-op; after an error it releases the connection.
	defer func() { _ = tx.Rollback(ctx) }()
	return w.insertCommit(ctx, tx, live)
}

// insertCommit inserts live in tx with insertUnnest's statement and
// commits: the commit time, or conflict when a known id kept some rows
// out (ON CONFLICT DO NOTHING), so the batch is rechained without them.
func (w *Writer) insertCommit(ctx context.Context, tx pgx.Tx, live []*pending) (committedAt time.Time, conflict bool, err error) {
	n, committedAt, err := w.params.execBatch(ctx, tx.Conn(), "chron_insert_unnest", unnestSQL, live)
	if err != nil {
		return time.Time{}, false, err
	}
	if n != int64(len(live)) {
		return time.Time{}, true, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return time.Time{}, false, outcome(err)
	}
	return committedAt.UTC(), false, nil
}

// chainRows chains live after the stream head.
func (w *Writer) chainRows(live []*pending) {
	seq, prev := w.lastSeq, w.lastHash
	for _, p := range live {
		seq++
		var h string
		h, w.buf = w.chain.hash(w.buf, prev, seq, p.p.body)
		p.row = Row{Record: p.p.rec, Stream: w.opts.Stream, Seq: seq, PrevHash: prev, Hash: h,
			Format: w.chain.format, KeyID: w.chain.keyID}
		prev = h
	}
}

// copyRefusedByRLS tells PostgreSQL's refusal of COPY FROM under row-level
// security (feature_not_supported, raised before any row is read).
func copyRefusedByRLS(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000" && strings.Contains(pgErr.Message, "row-level security")
}

// insertColumns are the columns a writer fills; committed_at is the
// database's.
var insertColumns = []string{"id", "stream", "seq", "time", "kind", "actor", "agent_name", "agent_namespace",
	"agent_uid", "org", "action", "context", "outcome", "reason", "message", "anchor", "skill_version_id",
	"skill_digest", "policies", "skill_rules", "replica", "request_id", "prev_hash", "hash", "format", "key_id"}

// copyValues lists a row's column values. Every text column is a plain
// string (Kind too): unnestArgs sorts the values into arrays by their Go type.
func copyValues(r *Row, p *prepared) []any {
	return []any{r.ID, r.Stream, r.Seq, r.Time, string(r.Kind), r.Actor, r.AgentName, r.AgentNamespace,
		r.AgentUID, r.Org, r.Action, json.RawMessage(p.ctxJSON), r.Outcome, r.Reason, r.Message, r.Anchor,
		r.SkillVersionID, r.SkillDigest, json.RawMessage(p.polJSON), json.RawMessage(p.rulesJSON),
		r.Replica, r.RequestID, r.PrevHash, r.Hash, r.Format, r.KeyID}
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
		case "format":
			typ = "smallint[]"
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
