package history

import (
	"errors"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/chron"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		target, ns string
		want       chron.HistoryQuery
		err        string
	}{
		{target: "policy/no-production-deploys", want: chron.HistoryQuery{Kind: "Policy", Name: "no-production-deploys"}},
		{target: "POL/x", want: chron.HistoryQuery{Kind: "Policy", Name: "x"}},
		{target: "aiorgs/engineering", want: chron.HistoryQuery{Kind: "AIOrg", Name: "engineering"}},
		{target: "skill/deploy-bot", want: chron.HistoryQuery{Kind: "Skill", Name: "deploy-bot"}},
		{target: "agent/default/bot", want: chron.HistoryQuery{Kind: "Agent", Namespace: "default", Name: "bot"}},
		{target: "agent/bot", ns: "default", want: chron.HistoryQuery{Kind: "Agent", Namespace: "default", Name: "bot"}},
		{target: "agent/bot", err: "give its namespace"},
		{target: "agent/prod/bot", ns: "default", err: "is in namespace prod, not -n default"},
		{target: "agent//bot", err: "give KIND/NAME"},
		{target: "policy/x", ns: "default", err: "cluster-scoped"},
		{target: "policy/", err: "give KIND/NAME"},
		{target: "policy/a/b", err: "give KIND/NAME"},
		{target: "crossorggrant/x", err: "the history is kept for aiorg, skill, policy and agent"},
	} {
		q := chron.HistoryQuery{Namespace: c.ns}
		err := ParseTarget(c.target, &q)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s -n %q: %v, want %q", c.target, c.ns, err, c.err)
		case c.err == "" && (err != nil || q != c.want):
			t.Errorf("%s -n %q: %+v, %v; want %+v", c.target, c.ns, q, err, c.want)
		}
	}
	q := chron.HistoryQuery{}
	if err := ParseTarget("agents/bot", &q); !errors.Is(err, ErrNoNamespace) {
		t.Errorf("an agent without a namespace: %v, want ErrNoNamespace", err)
	}
}
