// Package decide is the gate's decision engine: a snapshot of the declared
// resources and a request in, a decision out. It does no I/O.
package decide

import (
	"fmt"
	"strings"
)

// MaxActionLen bounds action names and patterns.
const MaxActionLen = 128

// Pattern is a validated action pattern. Segments are separated by ':'.
// A whole segment "*" matches exactly one segment; a '*' at the very end
// matches any rest of the action (so "deploy:*" matches "deploy:staging"
// and "deploy:staging:eu", and "*" alone matches every action). It is
// matched segment by segment: user input never becomes a regular
// expression. Match is how an allow reads a pattern; Covers, which adds
// the sub-actions beneath each matched action, is how a deny reads it.
type Pattern struct {
	src string
	// segs are the segments before the last one ("*" or a literal).
	segs []string
	// last is the final segment without a trailing '*'.
	last string
	// prefix is true when the pattern ends in '*'.
	prefix bool
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Literal reports whether the pattern has no wildcard: it matches exactly
// one action, itself.
func (p Pattern) Literal() bool {
	if p.prefix {
		return false
	}
	for _, s := range p.segs {
		if s == "*" {
			return false
		}
	}
	return p.last != "*"
}

// ParsePattern validates and compiles an action pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("action pattern is empty")
	}
	if len(s) > MaxActionLen {
		return Pattern{}, fmt.Errorf("action pattern %.32q... is longer than %d characters", s, MaxActionLen)
	}
	parts := strings.Split(s, ":")
	p := Pattern{src: s}
	for i, seg := range parts {
		last := i == len(parts)-1
		switch {
		case seg == "*":
			if last {
				p.prefix = true
			}
		case last && strings.HasSuffix(seg, "*"):
			lit := seg[:len(seg)-1]
			if err := validSegment(lit); err != nil {
				return Pattern{}, fmt.Errorf("action pattern %q: %w", s, err)
			}
			p.prefix = true
			seg = lit
		default:
			if err := validSegment(seg); err != nil {
				return Pattern{}, fmt.Errorf("action pattern %q: %w (use '*' for a whole segment, or a trailing '*')", s, err)
			}
		}
		if last {
			if seg == "*" {
				seg = ""
			}
			p.last = seg
		} else {
			p.segs = append(p.segs, seg)
		}
	}
	return p, nil
}

// MustParsePattern is ParsePattern for patterns known to be valid.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Match reports whether action (assumed valid, see ValidateAction) is
// matched by the pattern. It does not allocate.
func (p Pattern) Match(action string) bool {
	rest, ok := p.tail(action)
	if !ok {
		return false
	}
	if p.prefix {
		return strings.HasPrefix(rest, p.last)
	}
	return rest == p.last
}

// Covers reports whether action (assumed valid) is matched by the pattern
// or lies beneath an action it matches: "deploy:production" covers
// "deploy:production" and "deploy:production:eu-1", not
// "deploy:production-eu". This is how a deny reads a pattern (Deny rules,
// a skill's forbidden list): it holds for the sub-actions of what it
// names. A pattern ending in '*' already matches any rest, so for it
// Covers is Match. It does not allocate.
func (p Pattern) Covers(action string) bool {
	rest, ok := p.tail(action)
	if !ok {
		return false
	}
	if p.prefix {
		return strings.HasPrefix(rest, p.last)
	}
	n := len(p.last)
	return strings.HasPrefix(rest, p.last) && (len(rest) == n || rest[n] == ':')
}

// tail walks the pattern's leading segments over the action and returns
// what is left for the last one.
func (p Pattern) tail(action string) (string, bool) {
	rest := action
	for _, seg := range p.segs {
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", false
		}
		if seg != "*" && seg != rest[:i] {
			return "", false
		}
		rest = rest[i+1:]
	}
	return rest, true
}

// ValidateAction checks an action name an agent asks about:
// lowercase segments `resource:verb[:more]`, at least two of them.
func ValidateAction(a string) error {
	if a == "" {
		return fmt.Errorf("action is empty; name it as resource:verb, e.g. deploy:staging")
	}
	if len(a) > MaxActionLen {
		return fmt.Errorf("action is longer than %d characters", MaxActionLen)
	}
	n := 0
	for len(a) > 0 {
		seg := a
		if i := strings.IndexByte(a, ':'); i >= 0 {
			seg, a = a[:i], a[i+1:]
			if a == "" {
				return fmt.Errorf("action ends with ':'; name it as resource:verb, e.g. deploy:staging")
			}
		} else {
			a = ""
		}
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("action: %w", err)
		}
		n++
	}
	if n < 2 {
		return fmt.Errorf("action must have at least two segments, resource:verb, e.g. deploy:staging")
	}
	return nil
}

// validSegment: [a-z0-9][a-z0-9._/-]*
func validSegment(s string) error {
	if s == "" {
		return fmt.Errorf("empty segment")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '/' || c == '-'):
		default:
			return fmt.Errorf("segment %q: only lowercase letters, digits and . _ / - (not first) are allowed", s)
		}
	}
	return nil
}
