package v1alpha1

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestOrgPath(t *testing.T) {
	// A tree: root <- engineering <- platform; a cycle a <- b <- a; an
	// orphan whose parent is missing; a chain deeper than MaxOrgDepth.
	parents := map[string]OrgName{"root": "", "engineering": "root", "platform": "engineering", "a": "b", "b": "a", "orphan": "gone", "self": "self"}
	for i := 0; i <= MaxOrgDepth+1; i++ {
		parents[fmt.Sprintf("d%d", i)] = OrgName(fmt.Sprintf("d%d", i+1))
	}
	parents[fmt.Sprintf("d%d", MaxOrgDepth+2)] = ""
	parentOf := func(name string) (OrgName, bool, error) {
		p, ok := parents[name]
		return p, ok, nil
	}
	cases := []struct {
		org        string
		want       []string
		reason, at string
	}{
		{org: "root", want: []string{"root"}},
		{org: "platform", want: []string{"platform", "engineering", "root"}},
		{org: "a", reason: ReasonCycle, at: "a"},
		{org: "self", reason: ReasonCycle, at: "self"},
		{org: "orphan", reason: ReasonParentNotFound, at: "gone"},
		{org: "d0", reason: ReasonTooDeep},
	}
	for _, c := range cases {
		got, err := OrgPath(c.org, parents[c.org], parentOf)
		var pe *OrgPathError
		switch {
		case c.reason == "":
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("%s: got %v, %v; want %v", c.org, got, err, c.want)
			}
		case !errors.As(err, &pe) || pe.Reason != c.reason || (c.at != "" && pe.At != c.at) || pe.Chain[0] != c.org:
			t.Errorf("%s: got %v, %v; want %s at %q", c.org, got, err, c.reason, c.at)
		}
	}

	// Exactly MaxOrgDepth ancestors still resolve.
	if got, err := OrgPath("d2", "d3", parentOf); err != nil || len(got) != MaxOrgDepth+1 {
		t.Errorf("d2: got %d orgs, %v; want %d", len(got), err, MaxOrgDepth+1)
	}

	boom := errors.New("apiserver unavailable")
	if _, err := OrgPath("platform", "engineering", func(string) (OrgName, bool, error) { return "", false, boom }); !errors.Is(err, boom) {
		t.Errorf("a lookup error ends the walk as it is; got %v", err)
	}
}
