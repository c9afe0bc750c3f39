package chron

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"testing"
)

// TestJSONBRoundTrip stores canonical JSON in jsonb and checks that what
// comes back re-encodes to the same bytes, which is what lets Verify
// recompute hashes from the typed columns.
func TestJSONBRoundTrip(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	contexts := []map[string]any{
		{"int": 3, "float": 2.5, "big": 1e21, "tiny": 1e-7, "neg": math.Copysign(0, -1), "huge": 1.7976931348623157e308,
			"min": 5e-324, "maxint": int64(math.MaxInt64), "exact": 9007199254740993, "third": 1.0 / 3},
		{"nested": map[string]any{"b": map[string]any{"z": []any{1, 2.50, "x", nil, true}, "a": map[string]any{}}, "a": []any{}}},
		{"html": "<a href='x'>&</a>", "unicode": "é ü 日本 \u2028 \u2029 🎉", "ctl": "\t\n\x01\x7f", "quote": `"\`},
		{"": "empty key", "k e y s": 1, "ÄÖ": 2, "aa": 3, "b": 4},
	}
	for _, c := range contexts {
		_, want, err := boundContext(c)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := pool.QueryRow(ctx, "SELECT $1::jsonb::text", string(want)).Scan(&stored); err != nil {
			t.Fatalf("jsonb refused %s: %v", want, err)
		}
		got, err := canonFromJSON([]byte(stored))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("jsonb round trip changed the canonical form\nwrote %s\njsonb %s\nreread %s", want, stored, got)
		}
	}
	// And end to end: rows with these contexts hash identically when re-read.
	w := newWriter(t, pool, WriterOptions{})
	for i, c := range contexts {
		r := decision(i)
		r.Context = c
		if _, err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Rows != int64(len(contexts)) {
		t.Fatalf("verify: %+v", rep)
	}
}

// The fast paths of prepare must give the bytes canonJSON gives: they are
// hashed, and Verify recomputes them from what jsonb returns.
func TestCanonicalFastPaths(t *testing.T) {
	for _, ps := range [][]PolicyMatch{nil, {}, {{Name: "p", Version: 3, Rule: "r", Effect: "Deny"}},
		{{Name: "a<b>&", Version: 1 << 62, Rule: "é", Effect: "Allow"}, {Name: "x", Version: -7}},
		{{Name: "p", Version: 3, Rule: "r", Effect: "Deny"}, {Name: "q", Version: 1, Rule: "r", Effect: "Deny", Enforcement: "Audit"}}} {
		want, err := canonJSON(func() []PolicyMatch {
			if ps == nil {
				return []PolicyMatch{}
			}
			return ps
		}())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := policiesJSON(ps); string(got) != string(want) {
			t.Errorf("policiesJSON(%v) = %s, canonJSON = %s", ps, got, want)
		}
	}
	for _, c := range []map[string]any{
		{"a": 1.5, "b": []any{"x", true, nil, map[string]any{"z": math.Copysign(0, -1)}}, "token": "secret"},
		{"bad": "\xff\xfe", "n\x00k": "v"},   // not valid UTF-8, NUL in a key: the slow path
		{"i": 3, "s": struct{ A int }{A: 1}}, // Go types a round trip converts
		{"nl": []any(nil), "nm": map[string]any(nil), "e": []any{}},
	} {
		_, fast, err := boundContext(c)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		_, slow, err := boundContext(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow) {
			t.Errorf("context %v: %s, after a round trip %s", c, fast, slow)
		}
	}
}
