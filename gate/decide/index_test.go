package decide

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// TestIndexMissesNoRule holds the rule index to a linear scan: for random
// patterns (literal, "*" segments, trailing '*', leading "*"), Allow and
// Deny rules, and random actions, the rules a decision records are exactly
// those an allow's patterns match or a deny's cover (sub-actions too). A
// rule the index missed would be a Deny that doesn't apply.
func TestIndexMissesNoRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "ab", "c"}
	seg := func() string { return segs[rng.IntN(len(segs))] }
	pattern := func() string {
		n := 1 + rng.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			switch r := rng.IntN(6); {
			case r == 0:
				parts[i] = "*"
			case r == 1 && i == n-1:
				parts[i] = seg() + "*"
			default:
				parts[i] = seg()
			}
		}
		return strings.Join(parts, ":")
	}
	for round := range 50 {
		in := seedInputs()
		in.Policies = nil
		all := map[string]Pattern{}
		deny := map[string]bool{}
		for i := range 40 {
			p := pattern()
			name := fmt.Sprintf("p%d", i)
			all[name], deny[name] = MustParsePattern(p), rng.IntN(2) == 0
			effect := claiimv1.PolicyEffectAllow
			if deny[name] {
				effect = claiimv1.PolicyEffectDeny
			}
			in.Policies = append(in.Policies, claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{{Name: "r", Effect: effect,
					Actions: []claiimv1.ActionPattern{claiimv1.ActionPattern(p)}}}}})
		}
		s := buildSigned(in)
		a, _ := s.Agent("default", "bot")
		sv, _ := s.PinnedVersion(a)
		for range 200 {
			parts := make([]string, 2+rng.IntN(3))
			for i := range parts {
				parts[i] = seg()
			}
			action := strings.Join(parts, ":")
			var want, got []string
			for name, p := range all {
				if deny[name] && p.Covers(action) || !deny[name] && p.Match(action) {
					want = append(want, name)
				}
			}
			for _, m := range Decide(s, Request{Agent: a, Action: action, SkillVersionID: sv.ID, Now: now}).Policies {
				got = append(got, m.Policy)
			}
			sort.Strings(want)
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("round %d, action %q: matched %v, a linear scan matches %v (patterns %v, denies %v)", round, action, got, want, all, deny)
			}
		}
	}
}
