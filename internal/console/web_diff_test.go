package console

import (
	"strings"
	"testing"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func TestLineDiff(t *testing.T) {
	render := func(ls []diffLine) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(l.Mark + l.Text + "\n")
		}
		return b.String()
	}
	for _, tc := range []struct{ a, b, want string }{
		{"", "", ""},
		{"x\n", "x\n", " x\n"},
		{"", "a\nb\n", "+a\n+b\n"},
		{"a\nb\n", "", "-a\n-b\n"},
		{"a\nb\nc\n", "a\nc\n", " a\n-b\n c\n"},
		{"a\nc\n", "a\nb\nc\n", " a\n+b\n c\n"},
		{"a\nb\nc\nd\n", "a\nx\nc\ny\n", " a\n-b\n+x\n c\n-d\n+y\n"},
		{"version: 1\nallowedActions:\n- deploy:staging\n", "version: 2\nallowedActions:\n- deploy:staging\n- deploy:qa\n",
			"-version: 1\n+version: 2\n allowedActions:\n - deploy:staging\n+- deploy:qa\n"},
	} {
		if got := render(lineDiff(tc.a, tc.b)); got != tc.want {
			t.Errorf("lineDiff(%q, %q) =\n%s\nwant\n%s", tc.a, tc.b, got, tc.want)
		}
	}
}

// Past the table's bound the diff is still correct: every old line
// deleted, every new one added, the common head and tail kept.
func TestLineDiffPastTheBound(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("head\n")
	b.WriteString("head\n")
	for i := range 1100 {
		a.WriteString("a" + strings.Repeat("x", i%7) + "\n")
		b.WriteString("b" + strings.Repeat("y", i%5) + "\n")
	}
	got := lineDiff(a.String(), b.String())
	if len(got) != 1+2200 || got[0].Class != "same" || got[1].Class != "del" || got[len(got)-1].Class != "add" {
		t.Fatalf("%d lines, first %v, last %v", len(got), got[0], got[len(got)-1])
	}
}

func TestOrgTree(t *testing.T) {
	org := func(name, parent string) claiimv1.AIOrg {
		o := claiimv1.AIOrg{Spec: claiimv1.AIOrgSpec{Parent: claiimv1.OrgName(parent)}}
		o.Name = name
		return o
	}
	roots, stray := orgTree([]claiimv1.AIOrg{
		org("sales", ""), org("platform", "engineering"), org("engineering", ""), org("infra", "platform"),
		org("orphan", "gone"), org("loop-a", "loop-b"), org("loop-b", "loop-a"),
	})
	var names func(ns []*orgNode) string
	names = func(ns []*orgNode) string {
		var parts []string
		for _, n := range ns {
			s := n.Name
			if len(n.Children) > 0 {
				s += "(" + names(n.Children) + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	if got, want := names(roots), "engineering(platform(infra)) orphan sales"; got != want {
		t.Errorf("roots: %s, want %s", got, want)
	}
	if roots[1].Missing != "gone" {
		t.Errorf("the orphan's missing parent: %q", roots[1].Missing)
	}
	if got := names(stray); got != "loop-a loop-b" {
		t.Errorf("stray: %s, want the cycle", got)
	}
}
