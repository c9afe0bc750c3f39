package chron

// The request context is bounded before it is stored: secret-looking keys
// masked at any depth, nesting and size capped.

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

const (
	maxContextBytes = 16 << 10
	maxContextDepth = 4
	// Truncated replaces context parts beyond the depth or size bound.
	Truncated = "…truncated"
	// Masked replaces the value of every context key that looks secret.
	Masked = "***"
)

// Secrets hide behind key names; their values must never reach the audit
// store, whose readers are not the secrets' owners.
var sensitiveKeyParts = []string{"token", "password", "passwd", "secret", "key", "credential", "authorization", "cookie"}

func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, p := range sensitiveKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// boundContext masks secrets, caps depth and size, and returns the stored
// tree with its canonical JSON. An empty context is stored as {} and
// returned as nil.
func boundContext(c map[string]any) (map[string]any, []byte, error) {
	if len(c) == 0 {
		return nil, []byte("{}"), nil
	}
	// Work on a copy: the caller's map is not ours to mask.
	tree, ok := jsonCopy(c)
	t, _ := tree.(map[string]any)
	if !ok { // other Go types: a round trip converts them as encoding/json does
		b, err := json.Marshal(c)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: context is not JSON: %w", ErrInvalid, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("%w: context is not a JSON object: %w", ErrInvalid, err)
		}
		t = m
	}
	t = fixTree(t).(map[string]any)
	t = bound(t, 1).(map[string]any)
	out, err := json.Marshal(t)
	if err != nil {
		return nil, nil, err
	}
	if len(out) > maxContextBytes {
		t = shrink(t)
		if out, err = json.Marshal(t); err != nil {
			return nil, nil, err
		}
	}
	return t, out, nil
}

// bound masks sensitive keys at every depth and replaces containers nested
// deeper than maxContextDepth (the context object itself is depth 1).
func bound(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if depth > maxContextDepth {
			return Truncated
		}
		for k, e := range x {
			if sensitiveKey(k) {
				x[k] = Masked
			} else {
				x[k] = bound(e, depth+1)
			}
		}
		return x
	case []any:
		if depth > maxContextDepth {
			return Truncated
		}
		for i, e := range x {
			x[i] = bound(e, depth+1)
		}
		return x
	default:
		return v
	}
}

// shrink keeps top-level entries in key order while they fit and replaces
// the values of the rest, so that the largest parts go first only when they
// come first; if even the markers do not fit, the whole context is replaced.
func shrink(t map[string]any) map[string]any {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	marker, _ := json.Marshal(Truncated)
	size := 2 // {}
	out := make(map[string]any, len(t))
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(t[k])
		n := len(kb) + 1 + len(vb) + 1 // "k":v,
		if size+n > maxContextBytes {
			out[k] = Truncated
			n = len(kb) + 1 + len(marker) + 1
		} else {
			out[k] = t[k]
		}
		size += n
	}
	if size > maxContextBytes {
		return map[string]any{Truncated: fmt.Sprintf("context larger than %d bytes", maxContextBytes)}
	}
	return out
}
