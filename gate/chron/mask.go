package chron

// The request context is bounded before it is stored: secret-looking keys
// masked at any depth, nesting and size capped.

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/claiim/claiim-operator/gate/jsonw"
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

// sensitiveKey reports whether k, lowercased, contains one of
// sensitiveKeyParts. An ASCII key is checked in one pass without
// lowercasing it; other keys go through strings.ToLower, since some
// non-ASCII letters lower to ASCII ones (the Kelvin sign to k).
func sensitiveKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return sensitiveKeyUnicode(k)
		}
	}
	for i := 0; i < len(k); i++ {
		var parts []string
		switch k[i] | 0x20 { // ASCII lowercase for letters
		case 't':
			parts = sensitiveT
		case 'p':
			parts = sensitiveP
		case 's':
			parts = sensitiveS
		case 'k':
			parts = sensitiveK
		case 'c':
			parts = sensitiveC
		case 'a':
			parts = sensitiveA
		default:
			continue
		}
		for _, p := range parts {
			if len(k)-i >= len(p) && asciiFoldEqual(k[i:i+len(p)], p) {
				return true
			}
		}
	}
	return false
}

// The parts by first letter, for sensitiveKey's one pass.
var (
	sensitiveT = []string{"token"}
	sensitiveP = []string{"password", "passwd"}
	sensitiveS = []string{"secret"}
	sensitiveK = []string{"key"}
	sensitiveC = []string{"credential", "cookie"}
	sensitiveA = []string{"authorization"}
)

// asciiFoldEqual: s equals lower, a lowercase ASCII word, ignoring case.
func asciiFoldEqual(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func sensitiveKeyUnicode(k string) bool {
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
	e := getEncoder()
	defer putEncoder(e)
	t, err := e.boundContext(c)
	if err != nil {
		return nil, nil, err
	}
	return t, slices.Clone(e.buf), nil
}

// boundContext appends the canonical JSON of the bounded context to e.buf
// and returns its tree (see the function boundContext).
func (e *encoder) boundContext(c map[string]any) (map[string]any, error) {
	if len(c) == 0 {
		e.buf = append(e.buf, "{}"...)
		return nil, nil
	}
	var t map[string]any
	if jsonTree(c, 0) {
		// The tree is what encoding/json decodes to: copy it (the caller's
		// map is not ours to mask) fixed and bounded in one pass.
		t = boundCopy(c, 1).(map[string]any)
	} else { // other Go types: a round trip converts them as encoding/json does
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("%w: context is not JSON: %w", ErrInvalid, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%w: context is not a JSON object: %w", ErrInvalid, err)
		}
		t = fixTree(m).(map[string]any)
		t = bound(t, 1).(map[string]any)
	}
	start := len(e.buf)
	if err := e.object(t); err != nil {
		return nil, err
	}
	if len(e.buf)-start > maxContextBytes {
		t = e.shrink(t, start)
		e.buf = e.buf[:start]
		if err := e.object(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// jsonTree reports whether v is already what encoding/json decodes to, so
// that a copy is what a marshal round trip would give. It declines
// anything else, including strings that are not valid UTF-8 (which
// encoding/json repairs its own way) and trees deeper than 64.
func jsonTree(v any, depth int) bool {
	if depth > 64 { // deep or cyclic: encoding/json decides
		return false
	}
	switch x := v.(type) {
	case nil, bool:
		return true
	case string:
		return utf8.ValidString(x)
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case map[string]any:
		for k, el := range x {
			if !utf8.ValidString(k) || !jsonTree(el, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, el := range x {
			if !jsonTree(el, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// boundCopy is bound(fixTree(copy of v), depth) in one pass, for a tree
// jsonTree accepts: nil containers become nil, keys and strings lose NUL,
// -0 becomes 0, sensitive keys are masked and containers deeper than
// maxContextDepth truncated, without copying what is masked or truncated.
func boundCopy(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return nil
		}
		if depth > maxContextDepth {
			return Truncated
		}
		m := make(map[string]any, len(x))
		if !needsKeyFix(x) {
			for k, el := range x {
				m[k] = boundEntry(k, el, depth)
			}
			return m
		}
		// As fixTree: sorted, so that colliding keys resolve the same way.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			nk := cleanText(k)
			if _, dup := m[nk]; !dup {
				m[nk] = boundEntry(nk, x[k], depth)
			}
		}
		return m
	case []any:
		if x == nil {
			return nil
		}
		if depth > maxContextDepth {
			return Truncated
		}
		l := make([]any, len(x))
		for i, el := range x {
			l[i] = boundCopy(el, depth+1)
		}
		return l
	default:
		return fixTree(v) // a scalar
	}
}

func boundEntry(k string, v any, depth int) any {
	if sensitiveKey(k) {
		return Masked
	}
	return boundCopy(v, depth+1)
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
// It measures with e.buf past scratch, which it leaves as it found it.
func (e *encoder) shrink(t map[string]any, scratch int) map[string]any {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	marker := len(jsonw.AppendString(e.buf[:scratch], Truncated)) - scratch
	size := 2 // {}
	out := make(map[string]any, len(t))
	for _, k := range keys {
		kb := len(jsonw.AppendString(e.buf[:scratch], k)) - scratch
		e.buf = e.buf[:scratch]
		vb := 0
		if e.value(t[k]) == nil { // a stored tree always encodes
			vb = len(e.buf) - scratch
		}
		n := kb + 1 + vb + 1 // "k":v,
		if size+n > maxContextBytes {
			out[k] = Truncated
			n = kb + 1 + marker + 1
		} else {
			out[k] = t[k]
		}
		size += n
	}
	e.buf = e.buf[:scratch]
	if size > maxContextBytes {
		return map[string]any{Truncated: fmt.Sprintf("context larger than %d bytes", maxContextBytes)}
	}
	return out
}
