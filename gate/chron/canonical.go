package chron

// Canonical JSON: the one spelling of a JSON value that is stored and hashed,
// computed the same from a caller's Go values (Write) and from a jsonb
// column read back (Verify).

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

// canonJSON encodes v the way it reads back from jsonb: through a generic
// decode (numbers become float64, maps get sorted keys) and re-encode. jsonb
// keeps the value of every number Go writes (it is exact decimal), so the
// stored column decodes to the same tree and re-encodes to the same bytes.
func canonJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return canonFromJSON(b)
}

// canonFromJSON is canonJSON for JSON text, e.g. a jsonb column read back.
func canonFromJSON(b []byte) ([]byte, error) {
	var t any
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return json.Marshal(fixTree(t))
}

// fixTree removes what jsonb would change or refuse: -0 (jsonb stores 0) and
// NUL in strings (jsonb rejects \u0000).
func fixTree(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if !needsKeyFix(x) {
			for k, e := range x {
				x[k] = fixTree(e)
			}
			return x
		}
		// Sorted so that colliding keys resolve the same way every time.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := make(map[string]any, len(x))
		for _, k := range keys {
			nk := cleanText(k)
			if _, dup := m[nk]; !dup {
				m[nk] = fixTree(x[k])
			}
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = fixTree(e)
		}
		return x
	case string:
		return cleanText(x)
	case float64:
		if x == 0 && math.Signbit(x) {
			return float64(0)
		}
		return x
	default:
		return v
	}
}

func needsKeyFix(m map[string]any) bool {
	for k := range m {
		if strings.IndexByte(k, 0) >= 0 {
			return true
		}
	}
	return false
}

// policiesJSON is canonJSON of clean policy matches, built without the
// round trip: the generic tree canonJSON would decode (version as a
// float64, keys sorted by encoding/json), encoded once. Enforcement is
// written only when set: a row without audit matches encodes as it always
// did.
func policiesJSON(ps []PolicyMatch) ([]byte, error) {
	t := make([]any, len(ps))
	for i, p := range ps {
		m := map[string]any{"name": p.Name, "version": float64(p.Version), "rule": p.Rule, "effect": p.Effect}
		if p.Enforcement != "" { // absent when empty, as encoding/json's omitempty leaves it
			m["enforcement"] = p.Enforcement
		}
		t[i] = m
	}
	return json.Marshal(t)
}

// jsonCopy deep-copies a tree that is already what encoding/json decodes
// to, as a marshal round trip would but without encoding. It declines (ok
// false) anything else, including strings that are not valid UTF-8, which
// encoding/json repairs its own way.
func jsonCopy(v any) (any, bool) { return jsonCopyDepth(v, 0) }

func jsonCopyDepth(v any, depth int) (any, bool) {
	if depth > 64 { // deep or cyclic: encoding/json decides
		return nil, false
	}
	switch x := v.(type) {
	case nil, bool:
		return x, true
	case string:
		return x, utf8.ValidString(x)
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case map[string]any:
		if x == nil {
			return nil, true // encodes as null, like a nil interface
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, ok := jsonCopyDepth(e, depth+1)
			if !ok || !utf8.ValidString(k) {
				return nil, false
			}
			m[k] = c
		}
		return m, true
	case []any:
		if x == nil {
			return nil, true
		}
		l := make([]any, len(x))
		for i, e := range x {
			c, ok := jsonCopyDepth(e, depth+1)
			if !ok {
				return nil, false
			}
			l[i] = c
		}
		return l, true
	}
	return nil, false
}
