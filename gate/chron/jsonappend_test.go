package chron

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/jsonw"
)

// nastyStrings are the spellings encoding/json escapes or repairs: HTML,
// JSONP's line separators, every control character, NUL, invalid and
// truncated UTF-8, lone surrogates, and the seed's own secret words.
var nastyStrings = func() []string {
	s := []string{"", "plain", `"\`, "<a href='x'>&amp;</a>", "\u2028\u2029", "a\u2028b\u2029c",
		"\x00", "a\x00b", "\x7f", "é ü 日本 🎉", "\xff", "\xfe\xff", "a\xc3", "\xe2\x80", "\xe2\x80\xa8",
		"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\uFFFD", "…truncated", "***", "api_key", "Authorization",
		strings.Repeat("x", 5000), strings.Repeat("<&>", 100)}
	for c := range 0x20 {
		s = append(s, string(rune(c)), "x"+string(rune(c))+"y")
	}
	return s
}()

// nastyFloats sit on every edge of encoding/json's float format: the
// 'f'/'e' switch at 1e-6 and 1e21, the e-07 clean-up, -0, subnormals,
// the largest values and integers past 2^53.
var nastyFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 2.5, 1e-6, math.Nextafter(1e-6, 0),
	math.Nextafter(1e-6, 1), 1e-7, 1.5e-7, 1e-10, 1e-100, 1e-300, 5e-324, -5e-324, 2.2250738585072014e-308,
	1e20, 1e21, math.Nextafter(1e21, 0), math.Nextafter(1e21, math.Inf(1)), 1e22, 1e100, 1.7976931348623157e308,
	-1.7976931348623157e308, 9007199254740993, 1 << 62, -(1 << 63), 123456789012345678, 1e-5, 12e-7, -1e-7}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range nastyStrings {
		checkString(t, s)
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range nastyFloats {
		checkFloat(t, f)
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := jsonw.AppendFloat(nil, f); err == nil {
			t.Errorf("jsonw.AppendFloat(%v) encoded what encoding/json refuses", f)
		}
	}
}

func checkString(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s)
	if got := jsonw.AppendString([]byte("prefix"), s); string(got[6:]) != string(want) {
		t.Fatalf("jsonw.AppendString(%q) = %s, encoding/json %s", s, got[6:], want)
	}
}

func checkFloat(t *testing.T, f float64) {
	t.Helper()
	want, werr := json.Marshal(f)
	got, err := jsonw.AppendFloat(nil, f)
	if (werr == nil) != (err == nil) || string(got) != string(want) {
		t.Fatalf("jsonw.AppendFloat(%v) = %s (%v), encoding/json %s (%v)", f, got, err, want, werr)
	}
}

// treeFrom builds a JSON tree from fuzz bytes: every kind of value, keys
// that need the NUL fix or collide after it, secret-looking keys, nesting
// past the depth bound, and sometimes Go types only a round trip converts.
func treeFrom(data []byte) map[string]any {
	g := gen{data: data}
	m := map[string]any{}
	for len(g.data) > 0 && len(m) < 40 {
		m[g.key()] = g.value(1)
	}
	return m
}

type gen struct{ data []byte }

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) str() string {
	n := int(g.byte() % 12)
	if n == 11 {
		return nastyStrings[int(g.byte())%len(nastyStrings)]
	}
	n = min(n, len(g.data))
	s := string(g.data[:n])
	g.data = g.data[n:]
	return s
}

func (g *gen) key() string {
	switch g.byte() % 8 {
	case 0:
		return sensitiveKeyParts[int(g.byte())%len(sensitiveKeyParts)] + g.str()
	case 1:
		return "k\x00"
	case 2:
		return "k\uFFFD" // collides with k\x00 once fixed
	case 3:
		return "\x00" + g.str()
	}
	return g.str()
}

func (g *gen) value(depth int) any {
	switch b := g.byte(); b % 14 {
	case 0:
		return nil
	case 1:
		return b&16 != 0
	case 2, 3:
		return g.str()
	case 4:
		return nastyFloats[int(g.byte())%len(nastyFloats)]
	case 5:
		var u [8]byte
		for i := range u {
			u[i] = g.byte()
		}
		if f := math.Float64frombits(binary.LittleEndian.Uint64(u[:])); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return 0.5
	case 6, 7:
		if depth > 70 {
			return "leaf"
		}
		m := map[string]any{}
		for n := g.byte() % 5; n > 0; n-- {
			m[g.key()] = g.value(depth + 1)
		}
		return m
	case 8, 9:
		if depth > 70 {
			return 1.0
		}
		l := []any{}
		for n := g.byte() % 5; n > 0; n-- {
			l = append(l, g.value(depth+1))
		}
		return l
	case 10:
		return map[string]any(nil)
	case 11:
		return []any(nil)
	case 12: // a Go type encoding/json converts: the round-trip path
		return []any{int(b), struct{ A string }{g.str()}}
	default:
		return g.str() + strings.Repeat("y", int(g.byte())*40) // size for shrink
	}
}

// checkBound compares boundContext with the reflection path: the stored
// bytes and the returned tree, and that the caller's map is left alone.
func checkBound(t *testing.T, c map[string]any) {
	t.Helper()
	before, _ := json.Marshal(c)
	tree, got, err := boundContext(c)
	after, _ := json.Marshal(c)
	if !bytes.Equal(before, after) {
		t.Fatalf("boundContext changed the caller's map")
	}
	wantTree, want, werr := boundContextOracle(c)
	if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("boundContext = %s (%v)\nreflection path %s (%v)", got, err, want, werr)
	}
	if !reflect.DeepEqual(tree, wantTree) {
		t.Fatalf("boundContext's tree %#v\nreflection path's %#v", tree, wantTree)
	}
}

func TestBoundContextMatchesReflection(t *testing.T) {
	deep := func(n int) map[string]any {
		var v any = "leaf"
		for range n {
			v = map[string]any{"d": v}
		}
		return v.(map[string]any)
	}
	wide := map[string]any{}
	for i := range 3000 {
		wide[strings.Repeat("k", i%70)+string(rune('a'+i%26))+time.Duration(i).String()] = float64(i) * 1.5
	}
	cases := []map[string]any{nil, {}, deep(3), deep(4), deep(5), deep(63), deep(64), deep(65), deep(200), wide,
		{"api_key": "x", "nested": map[string]any{"password": map[string]any{"n": 1.0}}, "target": "eu"},
		{"k\x00": 1.0, "k\uFFFD": 2.0, "\x00token": "s", "a": map[string]any{"b\x00": "c\x00"}},
		{"bad": "\xff", "n": math.Copysign(0, -1)}, {"i": 3, "s": struct{ A int }{1}}, {"f": math.NaN()},
		{"nl": []any(nil), "nm": map[string]any(nil), "e": []any{}, "o": map[string]any{}},
		{"big": strings.Repeat("x", maxContextBytes), "a": 1.0, "z": "after"},
		{"html": "<>&\u2028", "e": 1e21, "t": 1e-7, "huge": 1.7976931348623157e308, "min": 5e-324},
	}
	for i := range 40 {
		cases = append(cases, map[string]any{strings.Repeat("w", i): strings.Repeat("v", 400+i), "x": strings.Repeat("é", 300)})
	}
	for _, c := range cases {
		checkBound(t, c)
	}
	bigKeys := map[string]any{}
	for i := range 1200 {
		bigKeys[strings.Repeat("q", 14)+time.Duration(i).String()] = "1234567890"
	}
	checkBound(t, bigKeys) // even the markers do not fit
}

// FuzzCanonicalAppender: on any tree, the appender writes exactly what
// the reflection-based encoding wrote, for the context, every string and
// float in it, the policy and rule columns and the content body.
func FuzzCanonicalAppender(f *testing.F) {
	f.Add([]byte("\x06\x03\x00\x04\x05\x06\x07\x08\x0a\x0b\x0c\x02\x0b\x07"), "<tok\x00en>\xff", int64(1<<62), uint64(0))
	f.Add([]byte{0, 11, 7, 2, 0x66, 0x6f, 6, 4, 1, 2, 3, 4, 5}, "\u2028", int64(-7), math.Float64bits(1e-7))
	f.Add([]byte(strings.Repeat("\x06\x01\x00", 80)), "", int64(0), math.Float64bits(math.Copysign(0, -1)))
	f.Add([]byte("\x0d\xff\x0d\xff\x0d\xff\x0d\xff\x0d\xff\x0d\xff"), "a\x00b", int64(3), math.Float64bits(1e21))
	f.Fuzz(func(t *testing.T, data []byte, text string, version int64, fbits uint64) {
		checkString(t, text)
		checkFloat(t, math.Float64frombits(fbits))
		checkBound(t, treeFrom(data))
		var tree any
		if json.Unmarshal(data, &tree) == nil {
			got, err := canonFromJSON(data)
			want, werr := canonFromJSONOracle(data)
			if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("canonFromJSON(%q) = %s (%v), reflection path %s (%v)", data, got, err, want, werr)
			}
		}
		ps := []PolicyMatch{{Name: text, Version: version, Rule: text, Effect: "Deny"}, {Name: "p", Enforcement: text}}
		for _, ps := range [][]PolicyMatch{nil, {}, ps} {
			got, _ := policiesJSON(ps)
			if want, _ := policiesJSONOracle(ps); !bytes.Equal(got, want) {
				t.Fatalf("policiesJSON(%v) = %s, reflection path %s", ps, got, want)
			}
		}
		r := &Record{ID: text, Time: time.Unix(version%253402300799, int64(fbits%1e9)), Kind: Kind(text), Actor: text,
			AgentName: text, AgentNamespace: text, AgentUID: text, Org: text, Action: text, Outcome: OutcomeDeny,
			Reason: text, Message: text, Anchor: text, SkillVersionID: text, SkillDigest: text, Replica: text,
			RequestID: text, Context: treeFrom(data), Policies: ps, SkillRules: []string{text, "forbidden:" + text}}
		checkContentBody(t, r)
		checkPrepare(t, r)
	})
}

func checkContentBody(t *testing.T, r *Record) {
	t.Helper()
	_, ctxJSON, err := boundContextOracle(r.Context)
	if err != nil {
		return
	}
	pol, _ := policiesJSONOracle(r.Policies)
	rules, _ := rulesJSONOracle(r.SkillRules)
	for _, args := range [][3][]byte{{ctxJSON, pol, rules}, {nil, nil, nil}, {[]byte("{}"), []byte("[]"), []byte("[]")}} {
		got, err := contentBody(r, args[0], args[1], args[2])
		want, werr := contentBodyOracle(r, args[0], args[1], args[2])
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("contentBody = %s (%v)\nreflection path %s (%v)", got, err, want, werr)
		}
	}
}

// checkPrepare: prepare stores and hashes what it did with the
// reflection-based encoding, field for field.
func checkPrepare(t *testing.T, r *Record) {
	t.Helper()
	got, err := prepare(r)
	if err != nil {
		return
	}
	in := *r
	in.ID, in.Time = got.rec.ID, got.rec.Time // fixed by the first prepare
	want, werr := prepareOracle(&in)
	if werr != nil {
		t.Fatalf("prepare accepted what the reflection path refuses: %v", werr)
	}
	if !bytes.Equal(got.body, want.body) || !bytes.Equal(got.ctxJSON, want.ctxJSON) ||
		!bytes.Equal(got.polJSON, want.polJSON) || !bytes.Equal(got.rulesJSON, want.rulesJSON) {
		t.Fatalf("prepare's encoding differs\nbody %s\nwant %s", got.body, want.body)
	}
	got.rec.Correction, want.rec.Correction = nil, nil
	if !reflect.DeepEqual(got.rec, want.rec) {
		t.Fatalf("prepare's record %#v\nreflection path's %#v", got.rec, want.rec)
	}
}

func TestPrepareMatchesReflection(t *testing.T) {
	for i := range 50 {
		r := decision(i)
		r.Context = treeFrom([]byte(strings.Repeat(string(rune(i)), i)))
		checkPrepare(t, r)
		checkContentBody(t, r)
	}
	r := decision(1)
	r.Policies, r.SkillRules = nil, nil
	checkPrepare(t, r)
	checkContentBody(t, r)
}

// sensitiveKey's one ASCII pass decides as lowercasing and searching did.
func TestSensitiveKeyMatchesLowerContains(t *testing.T) {
	keys := []string{"", "k", "KEY", "apiKey", "x-Auth-Token", "PassWD", "passw", "tok", "tokeN1", "my_secret_",
		"Authorizatio", "AUTHORIZATION", "cookiE", "credentia", "\u212Aey", "t\u00f6ken", "\u0130key", "sECRET\u00e9",
		"[key]", "@TOKEN", "pass\x00word", "ckey", "ppassword", "sssecret"}
	for _, k := range append(keys, nastyStrings...) {
		checkSensitive(t, k)
	}
}

func FuzzSensitiveKey(f *testing.F) {
	f.Add("apiKey")
	f.Add("\u212Aey")
	f.Fuzz(checkSensitive)
}

func checkSensitive(t *testing.T, k string) {
	lower := strings.ToLower(k)
	want := false
	for _, p := range sensitiveKeyParts {
		want = want || strings.Contains(lower, p)
	}
	if got := sensitiveKey(k); got != want {
		t.Fatalf("sensitiveKey(%q) = %v, lowercase and search says %v", k, got, want)
	}
}
