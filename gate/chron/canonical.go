package chron

// Canonical JSON: the one spelling of a JSON value that is stored and hashed,
// computed the same from a caller's Go values (Write) and from a jsonb
// column read back (Verify).

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strings"
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
	return marshalCanon(fixTree(t))
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
// float64, keys sorted by encoding/json), appended directly (see
// encoder.policies). Enforcement is written only when set: a row without
// audit matches encodes as it always did.
func policiesJSON(ps []PolicyMatch) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	e.policies(ps)
	return slices.Clone(e.buf), nil
}
