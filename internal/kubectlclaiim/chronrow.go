package kubectlclaiim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// chronRow is a Chron row as JSON and YAML print it, keyed by its column
// names.
type chronRow struct {
	ID             string              `json:"id"`
	Stream         string              `json:"stream"`
	Seq            int64               `json:"seq"`
	Time           time.Time           `json:"time"`
	CommittedAt    time.Time           `json:"committed_at"`
	Kind           string              `json:"kind"`
	Actor          string              `json:"actor,omitempty"`
	AgentName      string              `json:"agent_name,omitempty"`
	AgentNamespace string              `json:"agent_namespace,omitempty"`
	AgentUID       string              `json:"agent_uid,omitempty"`
	Org            string              `json:"org,omitempty"`
	Action         string              `json:"action,omitempty"`
	Context        map[string]any      `json:"context,omitempty"`
	Outcome        string              `json:"outcome"`
	Reason         string              `json:"reason"`
	Message        string              `json:"message,omitempty"`
	Anchor         string              `json:"anchor,omitempty"`
	SkillVersionID string              `json:"skill_version_id,omitempty"`
	SkillDigest    string              `json:"skill_digest,omitempty"`
	Policies       []chron.PolicyMatch `json:"policies,omitempty"`
	SkillRules     []string            `json:"skill_rules,omitempty"`
	Replica        string              `json:"replica,omitempty"`
	RequestID      string              `json:"request_id,omitempty"`
	PrevHash       string              `json:"prev_hash"`
	Hash           string              `json:"hash"`
	Format         int16               `json:"format"`
	KeyID          string              `json:"key_id,omitempty"`
}

func rowView(r chron.Row) chronRow {
	return chronRow{ID: r.ID, Stream: r.Stream, Seq: r.Seq, Time: r.Time, CommittedAt: r.CommittedAt, Kind: string(r.Kind),
		Actor: r.Actor, AgentName: r.AgentName, AgentNamespace: r.AgentNamespace, AgentUID: r.AgentUID, Org: r.Org,
		Action: r.Action, Context: r.Context, Outcome: r.Outcome, Reason: r.Reason, Message: r.Message, Anchor: r.Anchor,
		SkillVersionID: r.SkillVersionID, SkillDigest: r.SkillDigest, Policies: r.Policies, SkillRules: r.SkillRules,
		Replica: r.Replica, RequestID: r.RequestID, PrevHash: r.PrevHash, Hash: r.Hash, Format: r.Format, KeyID: r.KeyID}
}

// rowList is rows as one JSON document: {"items": [...]}.
func rowList(rows []chron.Row) map[string][]chronRow {
	items := make([]chronRow, 0, len(rows))
	for _, r := range rows {
		items = append(items, rowView(r))
	}
	return map[string][]chronRow{"items": items}
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
