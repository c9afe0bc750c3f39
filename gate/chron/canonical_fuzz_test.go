package chron

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCanonicalJSON: canonical JSON is one spelling per value. For any
// JSON text, canonFromJSON refuses it (a number beyond float64) or gives
// the same bytes every time: valid UTF-8 JSON without NUL (PostgreSQL
// refuses both) that is its own canonical form, and that comes back from
// the same value spelled as jsonb spells it, which is what lets Verify
// recompute a hash from a jsonb column.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[1,2.5,1e21,1e-7,-0,0.1,5e-324,1.7976931348623157e308,9007199254740993]}`,
		`{"a\u0000":1,"a\ufffd":2,"a":{"\u0000":"\u0000"}}`,
		`"<>&\u2028\u2029\t\n\u0001\u007f\"\\é日🎉"`,
		`{"":"","aa":1,"b":2,"ÄÖ":3,"k e y":{}}`,
		`[[],{},null,true,false,"",-1.5e-300,123456789012345678901234567890]`,
		`1e400`, `-1e400`, `"\ud800"`, "\"\xff\xfe\"", `{"a":1,"a":2}`, `  [ 1 , 2 ]  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := canonFromJSON(data)
		if err != nil {
			return
		}
		if !utf8.Valid(out) || !json.Valid(out) || hasNUL(out) {
			t.Fatalf("canonical form is not storable JSON: %q", out)
		}
		again, err := canonFromJSON(data)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("two encodings of %q differ: %s, then %s (%v)", data, out, again, err)
		}
		if fixed, err := canonFromJSON(out); err != nil || !bytes.Equal(fixed, out) {
			t.Fatalf("canonical form %s is not canonical: %s (%v)", out, fixed, err)
		}
		jb := jsonbSpelling(t, out)
		if back, err := canonFromJSON(jb); err != nil || !bytes.Equal(back, out) {
			t.Fatalf("jsonb's spelling changes the canonical form\nwrote %s\njsonb %s\nreread %s (%v)", out, jb, back, err)
		}
	})
}

// FuzzRowHash: a record Write would store hashes the same computed Write's
// way (prepare) and Verify's way (rowHash over the stored columns, JSON in
// jsonb's spelling). prepare never panics, refuses only with ErrInvalid,
// stores text PostgreSQL accepts, and preparing what it stored changes
// nothing: the hashed row is a fixed point.
func FuzzRowHash(f *testing.F) {
	f.Add("decision", "DENY", "prod-deploy-bot", []byte(`{"target":"eu","api_key":"x"}`), int64(1777888801), int64(123456789), int64(3))
	f.Add("event", "ALLOW", "a\x00b\xffc<>&\u2028", []byte(`{"n\u0000k":"v\u0000","d":{"e":{"f":{"g":{"h":1}}}}}`), int64(-62135596800), int64(0), int64(-1))
	f.Add("decision", "ALLOW", "", []byte(`{"big":"`+strings.Repeat("x", maxContextBytes)+`","a":1}`), int64(253402300799), int64(999999999), int64(1<<62))
	f.Add("", "DENY", "x", []byte(`null`), int64(0), int64(0), int64(0))
	f.Add("decision", "deny", "x", []byte(`{}`), int64(1), int64(1), int64(1))
	f.Add("decision", "DENY", "x", []byte(`{}`), int64(-62135596801), int64(0), int64(0))
	f.Add("decision", "DENY", "x", []byte(`{}`), int64(253402300800), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, kind, outcome, text string, ctxJSON []byte, sec, nsec, version int64) {
		r := &Record{ID: text, Time: time.Unix(sec, nsec), Kind: Kind(kind), Actor: text, AgentName: text,
			AgentNamespace: text, AgentUID: text, Org: text, Action: text, Outcome: outcome, Reason: text,
			Message: text, Anchor: text, SkillVersionID: text, SkillDigest: text, Replica: text, RequestID: text,
			Policies:   []PolicyMatch{{Name: text, Version: version, Rule: text, Effect: "Deny"}},
			SkillRules: []string{text, "forbidden:" + text}}
		_ = json.Unmarshal(ctxJSON, &r.Context)
		p, err := prepare(r)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("prepare refused without ErrInvalid: %v", err)
			}
			return
		}
		checkStorable(t, &p)
		const stream, seq = "gate-0", 7
		want, _ := chainHash(nil, streamPrefix(stream), GenesisHash, seq, p.body)
		stored := p.rec
		stored.Time = stored.Time.In(time.FixedZone("read back", 5*3600)) // pgx reads a timestamptz in any zone
		raw := rawRow{Row: Row{Record: stored, Stream: stream, Seq: seq, PrevHash: GenesisHash},
			ctxJSON: string(jsonbSpelling(t, p.ctxJSON)), polJSON: string(jsonbSpelling(t, p.polJSON)),
			rulesJSON: string(jsonbSpelling(t, p.rulesJSON))}
		v1 := newChainer(stream, nil)
		if got, _, err := rowHash(nil, &v1, &raw); err != nil || got != want {
			t.Fatalf("Verify would hash the stored row to %s (%v), Write hashed %s\nbody %s", got, err, want, p.body)
		}
		again, err := prepare(&p.rec)
		if err != nil || !bytes.Equal(again.body, p.body) {
			t.Fatalf("preparing the stored row again changed it (%v)\nonce  %s\ntwice %s", err, p.body, again.body)
		}
	})
}

// checkStorable: the hashed body is UTF-8 JSON, its JSON columns are the
// stored ones, and its text has no NUL.
func checkStorable(t *testing.T, p *prepared) {
	t.Helper()
	var c content
	if !utf8.Valid(p.body) || json.Unmarshal(p.body, &c) != nil {
		t.Fatalf("hashed body is not UTF-8 JSON: %q", p.body)
	}
	if !bytes.Equal(c.Context, p.ctxJSON) || !bytes.Equal(c.Policies, p.polJSON) || !bytes.Equal(c.SkillRules, p.rulesJSON) {
		t.Fatalf("hashed body %s does not embed the stored JSON columns", p.body)
	}
	for _, s := range []string{c.ID, c.Kind, c.Actor, c.Message, c.RequestID, string(p.rec.Kind), p.rec.Message} {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			t.Fatalf("text PostgreSQL refuses survived: %q", s)
		}
	}
	if at, err := time.Parse(time.RFC3339Nano, c.Time); err != nil || !at.Equal(p.rec.Time) {
		t.Fatalf("hashed time %q is not the stored %s (%v)", c.Time, p.rec.Time, err)
	}
}

// hasNUL reports whether JSON text holds a NUL in a string or a key once
// decoded (the text `\\u0000`, an escaped backslash, is no NUL).
func hasNUL(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}

// jsonbSpelling writes a JSON value the way PostgreSQL's jsonb prints it:
// keys shortest first then bytewise, ", " and ": " between items, numbers
// in plain decimal (no exponent), and only the escapes jsonb uses.
func jsonbSpelling(t *testing.T, b []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("re-spelling %q: %v", b, err)
	}
	var out bytes.Buffer
	writeJSONB(&out, v)
	return out.Bytes()
}

func writeJSONB(out *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		out.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				out.WriteString(", ")
			}
			writeJSONBString(out, k)
			out.WriteString(": ")
			writeJSONB(out, x[k])
		}
		out.WriteByte('}')
	case []any:
		out.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				out.WriteString(", ")
			}
			writeJSONB(out, e)
		}
		out.WriteByte(']')
	case string:
		writeJSONBString(out, x)
	case json.Number:
		out.WriteString(plainDecimal(string(x)))
	default: // bool, nil
		b, _ := json.Marshal(x)
		out.Write(b)
	}
}

// writeJSONBString escapes as PostgreSQL's escape_json does.
func writeJSONBString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case '\b', '\f', '\n', '\r', '\t':
			out.WriteString(strconv.Quote(string(c))[1:3])
		default:
			if c < ' ' {
				out.WriteString(`\u00`)
				out.WriteString(strconv.FormatUint(uint64(c)>>4, 16) + strconv.FormatUint(uint64(c)&15, 16))
			} else {
				out.WriteByte(c)
			}
		}
	}
	out.WriteByte('"')
}

// plainDecimal writes a JSON number without an exponent, exactly, as
// jsonb's numeric prints what it parsed: 1e+21 as 1000000000000000000000.
func plainDecimal(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	exp, _ := strconv.Atoi(expText)
	whole, frac, _ := strings.Cut(mant, ".")
	digits, point := whole+frac, len(whole)+exp
	switch {
	case point <= 0:
		digits, point = strings.Repeat("0", 1-point)+digits, 1
	case point > len(digits):
		digits += strings.Repeat("0", point-len(digits))
	}
	whole, frac = strings.TrimLeft(digits[:point], "0"), digits[point:]
	if whole == "" {
		whole = "0"
	}
	if frac != "" {
		whole += "." + frac
	}
	return sign + whole
}
