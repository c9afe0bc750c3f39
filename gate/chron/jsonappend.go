package chron

// A hand-written JSON appender for the canonical encoding: the bytes
// encoding/json's Marshal writes for the same values (HTML escaping on,
// map keys sorted bytewise, strings and numbers spelled by gate/jsonw as
// encoding/json spells them), without reflection and into a caller's buffer. The hashed row format is
// these bytes, so the appender must never differ from encoding/json by
// one byte: jsonappend_test.go compares the two on tables and fuzzed
// input, with the reflection-based encoding kept there as the oracle.

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/claiim/claiim-operator/gate/jsonw"
)

// encoder appends canonical JSON. keys is scratch space for sorting map
// keys, used as a stack so that nested maps share it.
type encoder struct {
	buf  []byte
	keys []string
}

var encoders = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 2048)} }}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

// putEncoder returns e to the pool unless it grew past what a typical
// row needs, so that one huge context does not stay pinned in memory.
func putEncoder(e *encoder) {
	if cap(e.buf) > 64<<10 || cap(e.keys) > 4096 {
		return
	}
	e.buf, e.keys = e.buf[:0], e.keys[:0]
	encoders.Put(e)
}

// value appends v, a tree of the types encoding/json decodes to. Other Go
// types, which no stored tree holds, go through encoding/json itself.
func (e *encoder) value(v any) error {
	var err error
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		e.buf = jsonw.AppendString(e.buf, x)
	case float64:
		e.buf, err = jsonw.AppendFloat(e.buf, x)
	case map[string]any:
		err = e.object(x)
	case []any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err = e.value(el); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	default:
		var b []byte
		if b, err = json.Marshal(x); err == nil {
			e.buf = append(e.buf, b...)
		}
	}
	return err
}

func (e *encoder) object(m map[string]any) error {
	if m == nil {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	start := len(e.keys)
	for k := range m {
		e.keys = append(e.keys, k)
	}
	end := len(e.keys)
	slices.Sort(e.keys[start:end])
	e.buf = append(e.buf, '{')
	for i := start; i < end; i++ {
		if i > start {
			e.buf = append(e.buf, ',')
		}
		k := e.keys[i] // re-read: a nested map may have grown e.keys
		e.buf = jsonw.AppendString(e.buf, k)
		e.buf = append(e.buf, ':')
		if err := e.value(m[k]); err != nil {
			e.keys = e.keys[:start]
			return err
		}
	}
	e.keys = e.keys[:start]
	e.buf = append(e.buf, '}')
	return nil
}

// marshalCanon is json.Marshal of a canonical tree, without reflection.
func marshalCanon(v any) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	if err := e.value(v); err != nil {
		return nil, err
	}
	return slices.Clone(e.buf), nil
}

// policies appends policiesJSON(ps): each match as the generic tree
// canonJSON would decode it to (keys sorted, version a float64), with
// enforcement only when set.
func (e *encoder) policies(ps []PolicyMatch) {
	e.buf = append(e.buf, '[')
	for i := range ps {
		p := &ps[i]
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, `{"effect":`...)
		e.buf = jsonw.AppendString(e.buf, p.Effect)
		if p.Enforcement != "" {
			e.buf = append(e.buf, `,"enforcement":`...)
			e.buf = jsonw.AppendString(e.buf, p.Enforcement)
		}
		e.buf = append(e.buf, `,"name":`...)
		e.buf = jsonw.AppendString(e.buf, p.Name)
		e.buf = append(e.buf, `,"rule":`...)
		e.buf = jsonw.AppendString(e.buf, p.Rule)
		e.buf = append(e.buf, `,"version":`...)
		e.buf, _ = jsonw.AppendFloat(e.buf, float64(p.Version)) // an int64 is always finite
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, ']')
}

// strings appends a list of strings; nil is [], as the rules column
// always stored it.
func (e *encoder) strings(ss []string) {
	e.buf = append(e.buf, '[')
	for i, s := range ss {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = jsonw.AppendString(e.buf, s)
	}
	e.buf = append(e.buf, ']')
}

var errEmptyRaw = errors.New("json: a JSON column is empty: unexpected end of JSON input")

// raw appends canonical JSON text as json.Marshal embeds a RawMessage:
// canonical text is already compact and escaped, so as it is; nil is
// null, and empty text is refused as encoding/json refuses it.
func (e *encoder) raw(b []byte) error {
	switch {
	case b == nil:
		e.buf = append(e.buf, "null"...)
	case len(b) == 0:
		return errEmptyRaw
	default:
		e.buf = append(e.buf, b...)
	}
	return nil
}

// spans locates the JSON columns inside a content body.
type spans struct{ ctx, pol, rules [2]int }

// content appends contentBody: the fields of the content struct in its
// order. It returns where the three JSON columns landed in e.buf.
func (e *encoder) content(r *Record, ctxJSON, polJSON, rulesJSON []byte) (spans, error) {
	var at spans
	var err error
	field := func(name, v string) {
		e.buf = append(e.buf, name...)
		e.buf = jsonw.AppendString(e.buf, v)
	}
	rawField := func(name string, b []byte) [2]int {
		e.buf = append(e.buf, name...)
		s := len(e.buf)
		if rerr := e.raw(b); rerr != nil {
			err = rerr
		}
		return [2]int{s, len(e.buf)}
	}
	field(`{"id":`, r.ID)
	// RFC 3339 text is digits and -+:.TZ only: nothing to escape.
	e.buf = append(e.buf, `,"time":"`...)
	e.buf = r.Time.UTC().AppendFormat(e.buf, time.RFC3339Nano)
	e.buf = append(e.buf, '"')
	field(`,"kind":`, string(r.Kind))
	field(`,"actor":`, r.Actor)
	field(`,"agent_name":`, r.AgentName)
	field(`,"agent_namespace":`, r.AgentNamespace)
	field(`,"agent_uid":`, r.AgentUID)
	field(`,"org":`, r.Org)
	field(`,"action":`, r.Action)
	at.ctx = rawField(`,"context":`, ctxJSON)
	field(`,"outcome":`, r.Outcome)
	field(`,"reason":`, r.Reason)
	field(`,"message":`, r.Message)
	field(`,"anchor":`, r.Anchor)
	field(`,"skill_version_id":`, r.SkillVersionID)
	field(`,"skill_digest":`, r.SkillDigest)
	at.pol = rawField(`,"policies":`, polJSON)
	at.rules = rawField(`,"skill_rules":`, rulesJSON)
	field(`,"replica":`, r.Replica)
	field(`,"request_id":`, r.RequestID)
	e.buf = append(e.buf, '}')
	return at, err
}
