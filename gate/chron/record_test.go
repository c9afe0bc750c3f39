package chron

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMaskAndBound(t *testing.T) {
	deep := map[string]any{"l2": map[string]any{"l3": map[string]any{"l4": map[string]any{"l5": map[string]any{"x": 1}}, "s": []any{[]any{1}}}}}
	cases := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"seed example", map[string]any{"api_key": "x", "nested": map[string]any{"password": "y"}, "target": "eu"},
			`{"api_key":"***","nested":{"password":"***"},"target":"eu"}`},
		{"every sensitive word, any case, any depth, inside lists",
			map[string]any{"Authorization": "Bearer a", "list": []any{map[string]any{"X-Session-Cookie": "c", "ok": 1}},
				"aws": map[string]any{"SecretAccessKey": map[string]any{"v": 1}, "region": "eu"}, "passwd": "p",
				"refresh_token": "t", "db_credentials": []any{"u", "p"}},
			`{"Authorization":"***","aws":{"SecretAccessKey":"***","region":"eu"},"db_credentials":"***","list":[{"X-Session-Cookie":"***","ok":1}],"passwd":"***","refresh_token":"***"}`},
		{"depth 4 kept, deeper truncated", deep,
			`{"l2":{"l3":{"l4":{"l5":"…truncated"},"s":["…truncated"]}}}`},
		{"empty", nil, `{}`},
		{"numbers, -0, NUL", map[string]any{"a": 3, "b": 2.5, "c": 1e21, "d": math.Copysign(0, -1), "e\x00": "x\x00y"},
			`{"a":3,"b":2.5,"c":1e+21,"d":0,"e�":"x�y"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got, err := boundContext(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestBoundSize(t *testing.T) {
	big := strings.Repeat("x", 20000)
	_, got, err := boundContext(map[string]any{"a": "small", "b": big, "c": "after"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"small","b":"…truncated","c":"after"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	many := map[string]any{}
	for i := range 3000 {
		many[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("z", i%50)+"-"+time.Duration(i).String()] = i
	}
	_, got, err = boundContext(many)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > maxContextBytes {
		t.Errorf("context is %d bytes, over %d", len(got), maxContextBytes)
	}
}

func TestPrepareRejects(t *testing.T) {
	for name, r := range map[string]*Record{
		"no kind":     {Outcome: OutcomeAllow},
		"bad outcome": {Kind: KindDecision, Outcome: "MAYBE"},
		"bad context": {Kind: KindDecision, Outcome: OutcomeAllow, Context: map[string]any{"c": make(chan int)}},
	} {
		if _, err := prepare(r); err == nil {
			t.Errorf("%s: prepare accepted %+v", name, r)
		}
	}
}

// TestHashFormat pins hash format v1: a change here breaks every stored chain.
func TestHashFormat(t *testing.T) {
	r := decision(1)
	r.ID = "00000000-0000-4000-8000-000000000001"
	p, err := prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := chainHash(nil, streamPrefix("gate-0"), GenesisHash, 1, p.body)
	const want = "cdc7aaa613d1f9d1fb467f4594c214599fe80b1832788573af0ae766e1d37aac"
	if h != want {
		t.Errorf("hash format changed: got %s, want %s\ncontent: %s", h, want, p.body)
	}
}

// TestJSONBRoundTrip stores canonical JSON in jsonb and checks that what
// comes back re-encodes to the same bytes, which is what lets Verify
// recompute hashes from the typed columns.
func TestJSONBRoundTrip(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	contexts := []map[string]any{
		{"int": 3, "float": 2.5, "big": 1e21, "tiny": 1e-7, "neg": -0.0, "huge": 1.7976931348623157e308,
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

func FuzzBoundContext(f *testing.F) {
	f.Add([]byte(`{"api_key":"x","nested":{"password":"y"},"target":"eu"}`))
	f.Add([]byte(`{"a":{"b":{"c":{"d":{"e":[1,2.5,1e21,-0]}}}},"TOKEN":[{"x":1}]}`))
	f.Add([]byte(`{"s":"\u0000<>&\u2028","n":12345678901234567890}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil || m == nil {
			return
		}
		tree, out, err := boundContext(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > maxContextBytes {
			t.Fatalf("%d bytes stored", len(out))
		}
		again, err := canonFromJSON(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not canonical: %s vs %s (%v)", out, again, err)
		}
		if bytes.Contains(out, []byte(`\u0000`)) {
			t.Fatalf("NUL survived: %s", out)
		}
		if len(tree) > 0 {
			re, _ := json.Marshal(tree)
			if !bytes.Equal(re, out) {
				t.Fatalf("returned tree %s differs from stored %s", re, out)
			}
		}
		checkMasked(t, tree, 1)
	})
}

func checkMasked(t *testing.T, v any, depth int) {
	switch x := v.(type) {
	case map[string]any:
		if depth > maxContextDepth {
			t.Fatalf("map at depth %d", depth)
		}
		for k, e := range x {
			if sensitiveKey(k) && !reflect.DeepEqual(e, Masked) {
				t.Fatalf("key %q not masked: %v", k, e)
			}
			checkMasked(t, e, depth+1)
		}
	case []any:
		if depth > maxContextDepth {
			t.Fatalf("list at depth %d", depth)
		}
		for _, e := range x {
			checkMasked(t, e, depth+1)
		}
	}
}

// The fast paths of prepare must give the bytes canonJSON gives: they are
// hashed, and Verify recomputes them from what jsonb returns.
func TestCanonicalFastPaths(t *testing.T) {
	for _, ps := range [][]PolicyMatch{nil, {}, {{Name: "p", Version: 3, Rule: "r", Effect: "Deny"}},
		{{Name: "a<b>&", Version: 1 << 62, Rule: "é", Effect: "Allow"}, {Name: "x", Version: -7}}} {
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
		{"a": 1.5, "b": []any{"x", true, nil, map[string]any{"z": -0.0}}, "token": "secret"},
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
