package chron

// Cursors: a position in commit order, (txid, stream, seq), and the
// direction of the listing it continues, as opaque URL-safe text.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"unicode/utf8"
)

// position is a row's place in commit order: its transaction, then its
// stream's chain. The zero stream and seq, which no row has, sit before
// every row of their transaction: (x, "", 0) is the horizon x, after
// every row of the transactions before x and before all of x's.
type position struct {
	txid   uint64
	stream string
	seq    int64
}

// Cursor layout, version 1: version, direction, txid and seq big-endian,
// then the stream's bytes.
const (
	cursorV1      byte = 1
	cursorHead         = 1 + 1 + 8 + 8
	maxStreamLen       = 256
	maxCursorLen       = (cursorHead + maxStreamLen + 2) / 3 * 4
	dirOldest     byte = 0
	dirNewest     byte = 1
	cursorDirMask byte = 1
)

// ErrCursor is a cursor that is not one List made: edited, cut, or made
// for a listing in the other order.
var ErrCursor = errors.New("chron: invalid cursor: pass back a next or tail value unchanged")

var cursorEncoding = base64.RawURLEncoding.Strict()

func encodeCursor(p position, newest bool) string {
	b := make([]byte, cursorHead, cursorHead+len(p.stream))
	b[0] = cursorV1
	if newest {
		b[1] = dirNewest
	}
	binary.BigEndian.PutUint64(b[2:], p.txid)
	binary.BigEndian.PutUint64(b[10:], uint64(p.seq))
	b = append(b, p.stream...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor accepts only what encodeCursor makes: one encoding of one
// valid position. Anything else is ErrCursor; the values reach SQL only
// as parameters.
func decodeCursor(s string) (p position, newest bool, err error) {
	if len(s) > maxCursorLen {
		return position{}, false, ErrCursor
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < cursorHead || b[0] != cursorV1 || b[1]&^cursorDirMask != 0 {
		return position{}, false, ErrCursor
	}
	p = position{
		txid:   binary.BigEndian.Uint64(b[2:]),
		seq:    int64(binary.BigEndian.Uint64(b[10:])),
		stream: string(b[cursorHead:]),
	}
	newest = b[1] == dirNewest
	if !validPosition(p) || encodeCursor(p, newest) != s {
		return position{}, false, ErrCursor
	}
	return p, newest, nil
}

// validPosition: a row's (seq > 0 on a named stream) or a horizon (no
// stream, seq 0); txid within xid8's range as PostgreSQL compares it.
func validPosition(p position) bool {
	if p.txid > math.MaxInt64 || len(p.stream) > maxStreamLen {
		return false
	}
	if p.stream == "" {
		return p.seq == 0
	}
	return p.seq > 0 && utf8.ValidString(p.stream) && strings.IndexByte(p.stream, 0) < 0
}

// before orders positions as the indexes do (stream bytewise, COLLATE "C").
func (p position) before(q position) bool {
	if p.txid != q.txid {
		return p.txid < q.txid
	}
	if c := bytes.Compare([]byte(p.stream), []byte(q.stream)); c != 0 {
		return c < 0
	}
	return p.seq < q.seq
}
