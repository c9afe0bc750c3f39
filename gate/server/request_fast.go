package server

// The /v/validate body without reflection: a body of known length is read
// once into a pooled buffer and parsed by hand when it is plain (the
// exact field names, each once, a context of JSON values, strings
// without lone surrogates or invalid UTF-8, numbers that fit a float64,
// nothing after the object). Everything else (every body encoding/json
// would refuse, and the rarities it accepts: fields in another case, null
// for a string, a repeated field) is decoded by decodeJSON from the same
// bytes, so refusals and their messages are encoding/json's as before.
// request_fast_test.go compares the two on every seed and fuzzed body.

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/claiim/claiim-operator/gate/api"
)

// bodyBufs holds request buffers; a body is at most MaxBodyBytes.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// decodeBody decodes r's body (already under http.MaxBytesReader) into
// out, as decodeJSON does. A body of unknown or too large a length
// streams through decodeJSON as it comes, so that it is refused as soon
// as the decoder can tell.
func decodeBody(r *http.Request, out *api.ValidateRequest) (string, error) {
	if r.ContentLength < 0 || r.ContentLength > MaxBodyBytes ||
		out.Action != "" || out.Context != nil || out.SkillVersionID != "" || out.ApprovalID != "" {
		return decodeJSON(r.Body, out)
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	if need := int(r.ContentLength) + 1; cap(*bp) < need { // +1: room to read the end
		*bp = make([]byte, 0, need)
	}
	data, rerr := readAll(r.Body, (*bp)[:0])
	*bp = data[:0]
	if rerr == nil && parseValidate(data, out) {
		return "", nil
	}
	// The decoder reads the same bytes, then what ended them: its result
	// does not depend on how the bytes arrive, only on where they stop.
	var src io.Reader = bytes.NewReader(data)
	if rerr != nil {
		src = io.MultiReader(src, errReader{rerr})
	}
	return decodeJSON(src, out)
}

// readAll reads src to its end into b; the error is nil at io.EOF.
func readAll(src io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := src.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// maxFastDepth bounds the hand parser's nesting; a deeper context (which
// checkContext refuses anyway) goes to encoding/json.
const maxFastDepth = 32

// parseValidate parses a plain body into out and reports whether it
// could; when it cannot, out is untouched.
func parseValidate(data []byte, out *api.ValidateRequest) bool {
	// One copy of the body backs every plain string of the request: one
	// allocation instead of one per string.
	p := parser{data: string(data)}
	var req api.ValidateRequest
	var seen uint8
	if p.space(); !p.eat('{') {
		return false
	}
	if p.space(); !p.eat('}') {
		for {
			p.space()
			key, ok := p.string()
			if p.space(); !ok || !p.eat(':') {
				return false
			}
			p.space()
			var bit uint8
			switch key {
			case "action":
				bit = 1
				req.Action, ok = p.string()
			case "context":
				bit = 2
				if ok = p.literal("null"); !ok {
					req.Context, ok = p.object(1)
				}
			case "skill_version_id":
				bit = 4
				req.SkillVersionID, ok = p.string()
			case "approval_id":
				bit = 8
				req.ApprovalID, ok = p.string()
			default:
				return false
			}
			if !ok || seen&bit != 0 {
				return false
			}
			seen |= bit
			if p.space(); p.eat('}') {
				break
			}
			if !p.eat(',') {
				return false
			}
		}
	}
	if p.space(); p.i != len(p.data) {
		return false
	}
	*out = req
	return true
}

type parser struct {
	data string
	i    int
}

func (p *parser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) literal(s string) bool {
	if len(p.data)-p.i >= len(s) && p.data[p.i:p.i+len(s)] == s {
		p.i += len(s)
		return true
	}
	return false
}

// value parses one JSON value into what encoding/json decodes an any to.
func (p *parser) value(depth int) (any, bool) {
	if p.i >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.i]; {
	case c == '"':
		return p.string()
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case p.literal("true"):
		return true, true
	case p.literal("false"):
		return false, true
	case p.literal("null"):
		return nil, true
	}
	return nil, false
}

func (p *parser) object(depth int) (map[string]any, bool) {
	if depth > maxFastDepth || !p.eat('{') {
		return nil, false
	}
	m := make(map[string]any)
	if p.space(); p.eat('}') {
		return m, true
	}
	for {
		p.space()
		k, ok := p.string()
		if p.space(); !ok || !p.eat(':') {
			return nil, false
		}
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated key: the last one stands, as in encoding/json
		if p.space(); p.eat('}') {
			return m, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}

func (p *parser) array(depth int) ([]any, bool) {
	if depth > maxFastDepth || !p.eat('[') {
		return nil, false
	}
	l := make([]any, 0)
	if p.space(); p.eat(']') {
		return l, true
	}
	for {
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		l = append(l, v)
		if p.space(); p.eat(']') {
			return l, true
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}

// number parses JSON's number grammar exactly, then the float64 as
// encoding/json converts it; out of range goes to encoding/json.
func (p *parser) number() (any, bool) {
	start := p.i
	p.eat('-')
	if p.eat('0') {
		// no more integer digits after a leading 0
	} else if !p.digits() {
		return nil, false
	}
	if p.eat('.') && !p.digits() {
		return nil, false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if !p.digits() {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(p.data[start:p.i], 64)
	return f, err == nil
}

func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// string parses a JSON string. Plain text is copied as it is; escapes are
// decoded as encoding/json decodes them; a surrogate escape, a control
// character or invalid UTF-8 goes to encoding/json.
func (p *parser) string() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.data) {
		switch c := p.data[p.i]; {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			return s, utf8.ValidString(s)
		case c == '\\':
			return p.escaped(start)
		case c < ' ':
			return "", false
		default:
			p.i++
		}
	}
	return "", false
}

// escaped finishes a string that has an escape at p.i.
func (p *parser) escaped(start int) (string, bool) {
	b := append(make([]byte, 0, p.i-start+16), p.data[start:p.i]...)
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), utf8.Valid(b)
		case c < ' ':
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.data) {
			return "", false
		}
		e := p.data[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok || 0xD800 <= r && r < 0xE000 { // surrogates: encoding/json's pairing rules
				return "", false
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (p *parser) hex4() (rune, bool) {
	if len(p.data)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.data[p.i : p.i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}
