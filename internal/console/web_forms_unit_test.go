package console

import (
	"regexp"
	"strings"
	"testing"
)

func TestRuleNameIsValidAndUnique(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	for _, c := range []struct {
		effect  string
		actions []string
		i       int
		want    string
	}{
		{"Deny", []string{"deploy:production"}, 0, "deny-deploy-production"},
		{"Allow", []string{"deploy:*"}, 1, "allow-deploy-2"},
		{"Deny", nil, 2, "deny-3"},
		{"", []string{"::"}, 0, "rule-1"},
		{"Deny", []string{strings.Repeat("a", 100)}, 3, "deny-" + strings.Repeat("a", 63-len("deny-")-2) + "-4"},
	} {
		got := ruleName(c.effect, c.actions, c.i)
		if got != c.want || !valid.MatchString(got) || len(got) > 63 {
			t.Errorf("ruleName(%q, %q, %d) = %q, want %q (a valid name)", c.effect, c.actions, c.i, got, c.want)
		}
	}
}
