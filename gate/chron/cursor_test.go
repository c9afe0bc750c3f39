package chron

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, p := range []position{
		{txid: 0},
		{txid: 742, stream: "gate/0", seq: 1},
		{txid: math.MaxInt64, stream: "manager/" + strings.Repeat("x", maxStreamLen-8), seq: math.MaxInt64},
		{txid: 9, stream: "gate/ünïcode", seq: 3},
	} {
		for _, newest := range []bool{false, true} {
			s := encodeCursor(p, newest)
			got, gotNewest, err := decodeCursor(s)
			if err != nil || got != p || gotNewest != newest {
				t.Errorf("%+v newest=%v: decoded %+v %v, %v", p, newest, got, gotNewest, err)
			}
			if len(s) > maxCursorLen {
				t.Errorf("%+v: cursor of %d characters, bound %d", p, len(s), maxCursorLen)
			}
		}
	}
}

// TestCursorTampered: every edit of a cursor's bytes or text is either
// refused or another valid position; no edit gets past the decoder as
// something it did not make.
func TestCursorTampered(t *testing.T) {
	good := encodeCursor(position{txid: 1234, stream: "gate/1", seq: 77}, true)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	bad := map[string]string{
		"empty-ish":        "AA",
		"not base64":       "!!!" + good,
		"padded":           good + "==",
		"standard base64":  strings.NewReplacer("-", "+", "_", "/").Replace(base64.RawStdEncoding.EncodeToString(append(raw, "/+?"...))),
		"cut":              good[:len(good)-3],
		"too long":         encodeCursor(position{txid: 1, stream: "g", seq: 1}, false) + strings.Repeat("A", maxCursorLen),
		"sql in the text":  good + "'; DROP TABLE chron_records; --",
		"whitespace":       " " + good,
		"version 2":        enc(append([]byte{2}, raw[1:]...)),
		"direction 2":      enc(append([]byte{1, 2}, raw[2:]...)),
		"seq 0 on stream":  enc(cursorBytes(1, 0, 5, 0, "gate/0")),
		"negative seq":     enc(cursorBytes(1, 0, 5, -1, "gate/0")),
		"seq without one":  enc(cursorBytes(1, 0, 5, 3, "")),
		"txid past int64":  enc(cursorBytes(1, 0, math.MaxUint64, 1, "gate/0")),
		"NUL in stream":    enc(cursorBytes(1, 0, 5, 1, "gate/\x00")),
		"bad UTF-8":        enc(cursorBytes(1, 0, 5, 1, "gate/\xff")),
		"stream too long":  enc(cursorBytes(1, 0, 5, 1, strings.Repeat("s", maxStreamLen+1))),
		"header only, cut": enc(raw[:cursorHead-1]),
	}
	for name, s := range bad {
		if _, _, err := decodeCursor(s); !errors.Is(err, ErrCursor) {
			t.Errorf("%s: %q accepted (%v)", name, s, err)
		}
	}
	// Any single changed character: refused or decoded to a valid position
	// that encodes back to exactly that text.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. '"
	for i := range good {
		for _, c := range alphabet {
			s := good[:i] + string(c) + good[i+1:]
			if p, newest, err := decodeCursor(s); err == nil && (!validPosition(p) || encodeCursor(p, newest) != s) {
				t.Fatalf("%q decoded to %+v", s, p)
			}
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(position{txid: 1234, stream: "gate/1", seq: 77}, true))
	f.Add(encodeCursor(position{txid: 5}, false))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		p, newest, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, ErrCursor) {
				t.Fatalf("error %v is not ErrCursor", err)
			}
			return
		}
		if !validPosition(p) || encodeCursor(p, newest) != s {
			t.Fatalf("%q decoded to %+v, newest %v", s, p, newest)
		}
	})
}

// TestCursorInjection: a well-formed cursor carrying SQL in its stream is
// only a position: the text reaches PostgreSQL as a parameter.
func TestCursorInjection(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{Stream: "gate/0"})
	if _, err := w.Write(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	evil := encodeCursor(position{txid: 1, stream: `gate/0" COLLATE "C"); DROP TABLE chron_records; --'`, seq: 1}, false)
	p, err := ListPage(ctx, pool, Filter{OldestFirst: true, After: evil})
	if err != nil || len(p.Rows) != 1 {
		t.Fatalf("list after a cursor with SQL in it: %d rows, %v", len(p.Rows), err)
	}
	// A cursor of one order is refused by a listing in the other.
	if _, err := ListPage(ctx, pool, Filter{After: evil}); !errors.Is(err, ErrCursor) {
		t.Errorf("an oldest-first cursor continued a newest-first listing: %v", err)
	}
}

func cursorBytes(version, dir byte, txid uint64, seq int64, stream string) []byte {
	b := []byte{version, dir}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(txid>>(8*i)))
	}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(uint64(seq)>>(8*i)))
	}
	return append(b, stream...)
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
