package decide

import (
	"strings"
	"testing"
)

// FuzzPatternMatch: whatever the pattern and the action, parsing and
// matching never panic; the matcher agrees with the segment-wise
// specification (naiveMatch), and Covers with its sub-action rule
// (naiveCovers: some leading run of whole segments is matched); a pattern that parses is what was written,
// within MaxActionLen, and covers the action it stands for (witness); every
// valid action is a literal pattern that matches itself and nothing else.
func FuzzPatternMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"deploy:staging", "deploy:staging"}, {"deploy:*", "deploy:a:b"}, {"*:read", "db:read"},
		{"db:*:read", "db:x:read"}, {"deploy:stag*", "deploy:staging"}, {"*", "a:b"},
		{"deploy:stag*", "deploy:stag"}, {"deploy:*", "deploy"}, {"*:*", "a:b:c"}, {"a:*:*", "a:b"},
		{"**", "a:b"}, {"*x", "a:b"}, {"a:*b", "a:b"}, {"a::b", "a::b"}, {":*", "a:b"}, {"a:", "a:"},
		{"Deploy:x", "deploy:x"}, {"a:b*", "a:b:c"}, {"a.b:c-d", "a.b:c-d"}, {".a:b", ".a:b"},
		{"s3:put/object", "s3:put/object"}, {"a:\xff*", "a:\xff"}, {strings.Repeat("a:", 64) + "*", "a:b"},
		{strings.Repeat("a:", 63) + "*", strings.Repeat("a:", 63) + "a"},
		// Sub-actions: covered beneath a whole segment, never beside it.
		{"deploy:production", "deploy:production:eu-1"}, {"deploy:production", "deploy:production-eu"},
		{"deploy:production", "deploy:productio:n"}, {"deploy", "deploy:production"}, {"*:read", "db:read:orders"},
		{"*:read", "db:orders:read"}, {"db:*:read", "db:x:read:y:z"}, {"deploy:prod*", "deploy:production:eu"},
		{"a:b", "a:b:"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, action string) {
		p, perr := ParsePattern(pattern)
		if perr == nil {
			if p.String() != pattern || len(pattern) > MaxActionLen {
				t.Fatalf("ParsePattern(%q) accepted it as %q", pattern, p.String())
			}
			if w := witness(pattern); ValidateAction(w) == nil && !p.Match(w) {
				t.Fatalf("%q does not match %q, an action it stands for", pattern, w)
			}
		}
		if ValidateAction(action) != nil {
			return
		}
		self, err := ParsePattern(action)
		if err != nil || !self.Literal() || !self.Match(action) {
			t.Fatalf("valid action %q as a pattern: %v, literal %v", action, err, self.Literal())
		}
		if !MustParsePattern("*").Match(action) {
			t.Fatalf(`"*" does not match %q`, action)
		}
		if perr != nil {
			return
		}
		if got, want := p.Match(action), naiveMatch(pattern, action); got != want {
			t.Fatalf("%q.Match(%q) = %v, the segment-wise specification says %v", pattern, action, got, want)
		}
		if p.Literal() && p.Match(action) != (pattern == action) {
			t.Fatalf("literal %q matched %q", pattern, action)
		}
		covers := p.Covers(action)
		if want := naiveCovers(pattern, action); covers != want {
			t.Fatalf("%q.Covers(%q) = %v, the sub-action rule says %v", pattern, action, covers, want)
		}
		if p.Match(action) && !covers || covers && !p.Covers(action+":x") {
			t.Fatalf("%q: Covers is not Match widened to sub-actions at %q", pattern, action)
		}
	})
}

// witness is an action a valid pattern covers: each wildcard segment
// filled with "x", a trailing '*' with nothing.
func witness(pattern string) string {
	segs := strings.Split(pattern, ":")
	for i, s := range segs {
		if s == "*" {
			segs[i] = "x"
		} else {
			segs[i] = strings.TrimSuffix(s, "*")
		}
	}
	return strings.Join(segs, ":")
}
