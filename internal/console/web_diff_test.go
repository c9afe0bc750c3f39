package console

import (
	"strings"
	"testing"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

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
