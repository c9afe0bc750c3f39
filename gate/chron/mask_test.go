package chron

import (
	"bytes"
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
		if hasNUL(out) {
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
