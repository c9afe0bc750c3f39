package kubectlclaiim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

// rowList is rows as one JSON document, {"items": [...]}, each row as the
// Chron read API shows it (console.Entry), so scripts see one shape.
func rowList(rows []chron.Row) map[string][]console.Entry {
	items := make([]console.Entry, 0, len(rows))
	for i := range rows {
		items = append(items, console.NewEntry(&rows[i]))
	}
	return map[string][]console.Entry{"items": items}
}

// rowTable is one row, a field a line.
func rowTable(w io.Writer, r chron.Row) {
	agent := r.AgentName
	if agent != "" && r.AgentNamespace != "" {
		agent = r.AgentNamespace + "/" + agent
	}
	var pols []string
	for _, p := range r.Policies {
		pols = append(pols, fmt.Sprintf("%s/%s (v%d) %s", p.Name, p.Rule, p.Version, p.Effect))
	}
	rows(w,
		[]string{"ID", r.ID},
		[]string{"TIME", r.Time.UTC().Format(time.RFC3339Nano)},
		[]string{"KIND", string(r.Kind)},
		[]string{"ACTOR", orDash(r.Actor)},
		[]string{"AGENT", orDash(agent)},
		[]string{"ORG", orDash(r.Org)},
		[]string{"ACTION", orDash(r.Action)},
		[]string{"OUTCOME", r.Outcome},
		[]string{"REASON", r.Reason},
		[]string{"MESSAGE", orDash(oneLineFull(r.Message))},
		[]string{"ANCHOR", orDash(r.Anchor)},
		[]string{"SKILL VERSION", orDash(r.SkillVersionID) + " " + orDash(r.SkillDigest)},
		[]string{"POLICIES", orDash(strings.Join(pols, ", "))},
		[]string{"SKILL RULES", orDash(strings.Join(r.SkillRules, ", "))},
		[]string{"CONTEXT", orDash(contextText(r.Context))},
		[]string{"CHAIN", fmt.Sprintf("%s #%s (format v%d, key %s)", r.Stream, strconv.FormatInt(r.Seq, 10), r.Format, orDash(r.KeyID))},
		[]string{"PREV HASH", orDash(r.PrevHash)},
		[]string{"HASH", orDash(r.Hash)},
		[]string{"COMMITTED", r.CommittedAt.UTC().Format(time.RFC3339Nano)},
	)
}

func contextText(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(parts)
	return oneLineFull(strings.Join(parts, " "))
}

// oneLineFull keeps stored text on its line without shortening it.
func oneLineFull(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
