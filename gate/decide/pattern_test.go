package decide

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"deploy:staging", "deploy:staging", true},
		{"deploy:staging", "deploy:production", false},
		{"deploy:staging", "deploy:staging:eu", false},
		{"deploy:staging", "deploy:stagingx", false},
		{"deploy:*", "deploy:staging", true},
		{"deploy:*", "deploy:staging:eu", true},
		{"deploy:*", "deployx:staging", false},
		{"deploy:*", "db:read", false},
		{"*:read", "db:read", true},
		{"*:read", "db:write", false},
		{"*:read", "db:orders:read", false},
		{"db:*:read", "db:orders:read", true},
		{"db:*:read", "db:orders:write", false},
		{"db:*:read", "db:read", false},
		{"deploy:stag*", "deploy:staging", true},
		{"deploy:stag*", "deploy:stag", true},
		{"deploy:stag*", "deploy:production", false},
		{"*", "deploy:production", true},
		{"*", "a:b:c", true},
	}
	for _, c := range cases {
		p := MustParsePattern(c.pattern)
		if got := p.Match(c.action); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

// TestPatternCovers: a deny's reading of a pattern adds the sub-actions
// beneath each action it matches, at a ':' and never inside a segment.
func TestPatternCovers(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"deploy:production", "deploy:production", true},
		{"deploy:production", "deploy:production:eu-1", true},
		{"deploy:production", "deploy:production:eu-1:canary", true},
		{"deploy:production", "deploy:production-eu", false},
		{"deploy:production", "deploy:prod", false},
		{"deploy:production", "deploy:staging:production", false},
		{"deploy", "deploy:production", true},
		{"deploy", "deployx:production", false},
		{"*:read", "db:read", true},
		{"*:read", "db:read:orders", true},
		{"*:read", "db:orders:read", false},
		{"db:*:read", "db:orders:read:all", true},
		{"db:*:read", "db:orders:write:read", false},
		{"deploy:prod*", "deploy:production:eu", true},
		{"deploy:*", "deploy:production:eu", true},
		{"deploy:*", "deployment:x", false},
	}
	for _, c := range cases {
		p := MustParsePattern(c.pattern)
		if got := p.Covers(c.action); got != c.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
		if got := naiveCovers(c.pattern, c.action); got != c.want {
			t.Errorf("naiveCovers(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

func TestParsePatternRejects(t *testing.T) {
	for _, s := range []string{
		"", "Deploy:staging", "dep*oy:staging", "deploy:(staging|prod)", "**", "deploy::x",
		"deploy: staging", ":deploy", "deploy:", "*stag", "deploy:.x", strings.Repeat("a", 129),
	} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) accepted an invalid pattern", s)
		}
	}
}

func TestValidateAction(t *testing.T) {
	for _, ok := range []string{"deploy:staging", "db:orders:read", "s3:put/object", "k8s:apply.v2"} {
		if err := ValidateAction(ok); err != nil {
			t.Errorf("ValidateAction(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "deploy", "deploy:", ":staging", "deploy:*", "Deploy:staging", "deploy:staging ", strings.Repeat("a:", 65)} {
		if err := ValidateAction(bad); err == nil {
			t.Errorf("ValidateAction(%q) accepted an invalid action", bad)
		}
	}
}

func TestLiteral(t *testing.T) {
	for s, want := range map[string]bool{"deploy:staging": true, "deploy:*": false, "*:read": false, "deploy:stag*": false} {
		if got := MustParsePattern(s).Literal(); got != want {
			t.Errorf("%q.Literal() = %v, want %v", s, got, want)
		}
	}
}

// naiveMatch is the specification the matcher must agree with: segments
// compared one by one, with the trailing-star rule.
func naiveMatch(pattern, action string) bool {
	ps, as := strings.Split(pattern, ":"), strings.Split(action, ":")
	for i, p := range ps {
		last := i == len(ps)-1
		if last && strings.HasSuffix(p, "*") {
			rest := strings.Join(as[min(i, len(as)):], ":")
			if i >= len(as) {
				return false
			}
			return strings.HasPrefix(rest, strings.TrimSuffix(p, "*"))
		}
		if i >= len(as) || (p != "*" && p != as[i]) {
			return false
		}
	}
	return len(as) == len(ps)
}

// naiveCovers is the sub-action rule: the pattern matches the action or
// one of the actions it lies beneath (its leading runs of whole segments).
func naiveCovers(pattern, action string) bool {
	as := strings.Split(action, ":")
	for n := 1; n <= len(as); n++ {
		if naiveMatch(pattern, strings.Join(as[:n], ":")) {
			return true
		}
	}
	return false
}
