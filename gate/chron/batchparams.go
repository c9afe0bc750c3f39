package chron

// A batch's INSERT parameters, one PostgreSQL binary array per column,
// written into one reused buffer. pgx's general encoder boxed every value
// and grew a buffer per array: about a sixth of the gate's garbage and 12%
// of its CPU per decision (docs/benchmarks.md). The statement is the same;
// only the encoding of its parameters is done here.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Element type OIDs of the statement's arrays (pg_type).
const (
	oidInt2        = 21
	oidInt8        = 20
	oidText        = 25
	oidTimestamptz = 1184
)

// keepParamsBuf bounds the buffer kept between batches: a batch of large
// records may grow it further, and it is dropped after that batch.
const keepParamsBuf = 1 << 20

// pgEpoch is PostgreSQL's timestamp zero in Unix microseconds; binary
// timestamps are microseconds from it. (Not time.Sub: a Duration spans
// only ±292 years, and a record's time may be any year from 1 to 9999.)
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// binaryFormats and resultBinary: every parameter and both result
// columns in binary.
var (
	binaryFormats = func() []int16 {
		f := make([]int16, len(insertColumns))
		for i := range f {
			f[i] = 1
		}
		return f
	}()
	resultBinary = []int16{1, 1}
)

// batchParams encodes batches; owned by the writer goroutine.
type batchParams struct {
	msg    []byte // the Bind, Execute and Sync messages
	buf    []byte
	ends   []int
	values [][]byte
}

// encode returns live's parameters in insertColumns' order, valid until
// the next call.
func (b *batchParams) encode(live []*pending) [][]byte {
	if cap(b.buf) > keepParamsBuf {
		b.buf = nil
	}
	b.buf, b.ends, b.values = b.buf[:0], b.ends[:0], b.values[:0]
	for c := range insertColumns {
		b.buf = b.column(b.buf, c, live)
		b.ends = append(b.ends, len(b.buf))
	}
	start := 0 // cut once the buffer has stopped moving
	for _, end := range b.ends {
		b.values = append(b.values, b.buf[start:end:end])
		start = end
	}
	return b.values
}

// column appends column c of every row as a one-dimensional array.
func (b *batchParams) column(buf []byte, c int, live []*pending) []byte {
	elem := uint32(oidText)
	switch insertColumns[c] {
	case "seq":
		elem = oidInt8
	case "time":
		elem = oidTimestamptz
	case "format":
		elem = oidInt2
	}
	buf = binary.BigEndian.AppendUint32(buf, 1)    // dimensions
	buf = binary.BigEndian.AppendUint32(buf, 0)    // no NULLs
	buf = binary.BigEndian.AppendUint32(buf, elem) // element type
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(live)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	text := textValues[c]
	for _, p := range live {
		switch {
		case elem == oidInt8:
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(p.row.Seq))
		case elem == oidTimestamptz:
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(p.row.Time.UnixMicro()-pgEpoch))
		case elem == oidInt2:
			buf = binary.BigEndian.AppendUint32(buf, 2)
			buf = binary.BigEndian.AppendUint16(buf, uint16(p.row.Format))
		case text.json != nil: // JSON is sent as text, as the statement casts it
			buf = appendElem(buf, text.json(&p.p))
		default:
			buf = appendElem(buf, text.str(&p.row))
		}
	}
	return buf
}

// textValue reads one text column of a row: its string, or its JSON.
type textValue struct {
	str  func(*Row) string
	json func(*prepared) []byte
}

// textValues is each of insertColumns' text readers, resolved from the
// names once rather than per row (zero for the binary columns).
var textValues = func() []textValue {
	v := make([]textValue, len(insertColumns))
	for c, name := range insertColumns {
		switch name {
		case "seq", "time", "format":
		case "context":
			v[c].json = func(p *prepared) []byte { return p.ctxJSON }
		case "policies":
			v[c].json = func(p *prepared) []byte { return p.polJSON }
		case "skill_rules":
			v[c].json = func(p *prepared) []byte { return p.rulesJSON }
		default:
			v[c].str = textColumn(name)
		}
	}
	return v
}()

// textColumn reads text column name of a row.
func textColumn(name string) func(*Row) string {
	switch name {
	case "id":
		return func(r *Row) string { return r.ID }
	case "stream":
		return func(r *Row) string { return r.Stream }
	case "kind":
		return func(r *Row) string { return string(r.Kind) }
	case "actor":
		return func(r *Row) string { return r.Actor }
	case "agent_name":
		return func(r *Row) string { return r.AgentName }
	case "agent_namespace":
		return func(r *Row) string { return r.AgentNamespace }
	case "agent_uid":
		return func(r *Row) string { return r.AgentUID }
	case "org":
		return func(r *Row) string { return r.Org }
	case "action":
		return func(r *Row) string { return r.Action }
	case "outcome":
		return func(r *Row) string { return r.Outcome }
	case "reason":
		return func(r *Row) string { return r.Reason }
	case "message":
		return func(r *Row) string { return r.Message }
	case "anchor":
		return func(r *Row) string { return r.Anchor }
	case "skill_version_id":
		return func(r *Row) string { return r.SkillVersionID }
	case "skill_digest":
		return func(r *Row) string { return r.SkillDigest }
	case "replica":
		return func(r *Row) string { return r.Replica }
	case "request_id":
		return func(r *Row) string { return r.RequestID }
	case "prev_hash":
		return func(r *Row) string { return r.PrevHash }
	case "hash":
		return func(r *Row) string { return r.Hash }
	case "key_id":
		return func(r *Row) string { return r.KeyID }
	}
	panic("chron: no text value for column " + name) // at start: insertColumns names a column this file does not know
}

func appendElem[T string | []byte](buf []byte, v T) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

// execBatch runs sql (singleSQL or unnestSQL) with live's parameters on
// conn, prepared once per connection, and returns the statement's row
// count and now().
//
// The messages are encoded by pgproto3 into the batch's own reused buffer
// and written in one write: pgconn's ExecPrepared would copy them into its
// frontend's buffer, which it drops after every flush above 1 kB, so each
// batch regrew it from 1 kB to the batch's size (about 3 kB of garbage per
// decision, docs/benchmarks.md), and it asks for the portal's description,
// which the prepared statement already has. A connection that did not get
// as far as ReadyForQuery, or whose deadline the context may have set, is
// closed, and the pool drops it.
func (b *batchParams) execBatch(ctx context.Context, conn *pgx.Conn, name, sql string, live []*pending) (int64, time.Time, error) {
	if _, err := conn.Prepare(ctx, name, sql); err != nil {
		return 0, time.Time{}, err
	}
	msg, err := (&pgproto3.Bind{PreparedStatement: name, ParameterFormatCodes: binaryFormats,
		Parameters: b.encode(live), ResultFormatCodes: resultBinary}).Encode(b.msg[:0])
	if err != nil {
		return 0, time.Time{}, &exchangeError{err: err}
	}
	msg, _ = (&pgproto3.Execute{}).Encode(msg)
	msg, _ = (&pgproto3.Sync{}).Encode(msg)
	if cap(msg) <= keepParamsBuf {
		b.msg = msg
	} else {
		b.msg = nil
	}
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, &exchangeError{err: err}
	}
	pc := conn.PgConn()
	if pc.IsClosed() || pc.IsBusy() {
		return 0, time.Time{}, &exchangeError{err: errors.New("chron: the database connection is closed or busy")}
	}
	nc := pc.Conn()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	n, at, ready, err := exchange(ctx, pc, nc, msg)
	if !stop() || !ready {
		closeNow(pc)
	}
	return n, at, err
}

// closeNow closes pc without a goodbye, which a connection in an unknown
// state may not take; the pool drops a closed connection on Release.
func closeNow(pc *pgconn.PgConn) {
	closed, cancel := context.WithCancel(context.Background())
	cancel()
	_ = pc.Close(closed)
}

// statementLost tells that the session no longer has the prepared
// statement pgx lists for it (SQLSTATE 26000, at Bind: nothing ran). A
// DISCARD ALL or DEALLOCATE does that, as does a pooler that hands the
// session's statements to another server connection. pgx would Bind the
// same name forever, so insertOnce closes the connection, and the pool's
// next one prepares it again.
func statementLost(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "26000"
}

// exchange writes msg (Bind, Execute, Sync) to pc's connection nc and reads the answer up
// to ReadyForQuery (ready): the row count and now() of the one result row,
// or the server's error.
func exchange(ctx context.Context, pc *pgconn.PgConn, nc net.Conn, msg []byte) (n int64, at time.Time, ready bool, err error) {
	if sent, err := nc.Write(msg); err != nil {
		return 0, time.Time{}, false, &exchangeError{err: withCtx(ctx, err), sent: sent > 0}
	}
	rows, shaped := 0, true
	var serverErr error
	for {
		m, err := pc.ReceiveMessage(context.Background())
		if err != nil {
			return 0, time.Time{}, false, &exchangeError{err: withCtx(ctx, err), sent: true}
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			rows++
			if len(m.Values) == 2 && len(m.Values[0]) == 8 && len(m.Values[1]) == 8 {
				n = int64(binary.BigEndian.Uint64(m.Values[0]))
				at = time.UnixMicro(pgEpoch + int64(binary.BigEndian.Uint64(m.Values[1]))).UTC()
			} else {
				shaped = false
			}
		case *pgproto3.ErrorResponse:
			serverErr = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			if serverErr != nil {
				return 0, time.Time{}, true, serverErr
			}
			if rows != 1 || !shaped {
				return 0, time.Time{}, true, fmt.Errorf("chron: unexpected answer to the batch's INSERT: %d rows", rows)
			}
			return n, at, true, nil
		}
	}
}

// exchangeError is a failure of the connection during a batch. Once any
// of the batch has been sent it may have committed: it is not safe to
// retry (outcome, insert.go), whatever the error it wraps says.
type exchangeError struct {
	err  error
	sent bool
}

func (e *exchangeError) Error() string     { return e.err.Error() }
func (e *exchangeError) Unwrap() error     { return e.err }
func (e *exchangeError) SafeToRetry() bool { return !e.sent }

// withCtx says the context ended, when it did, rather than the deadline
// it set on the connection.
func withCtx(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return err
}
