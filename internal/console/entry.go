package console

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Entry is one Chron row as the API returns it: every stored field, its
// place in its stream's chain and its hash. The field names are API:
// added to, never renamed. Empty lists and objects are [] and {}, never
// null, so a client need not tell the two apart.
type Entry struct {
	ID             string              `json:"id"`
	Time           time.Time           `json:"time"`
	CommittedAt    time.Time           `json:"committed_at"`
	Kind           string              `json:"kind"`
	Actor          string              `json:"actor"`
	AgentName      string              `json:"agent_name"`
	AgentNamespace string              `json:"agent_namespace"`
	AgentUID       string              `json:"agent_uid"`
	Org            string              `json:"org"`
	Action         string              `json:"action"`
	Context        map[string]any      `json:"context"`
	Outcome        string              `json:"outcome"`
	Reason         string              `json:"reason"`
	Message        string              `json:"message"`
	Anchor         string              `json:"anchor"`
	SkillVersionID string              `json:"skill_version_id"`
	SkillDigest    string              `json:"skill_digest"`
	Policies       []chron.PolicyMatch `json:"policies"`
	SkillRules     []string            `json:"skill_rules"`
	Replica        string              `json:"replica"`
	RequestID      string              `json:"request_id"`
	Stream         string              `json:"stream"`
	Seq            int64               `json:"seq"`
	PrevHash       string              `json:"prev_hash"`
	Hash           string              `json:"hash"`
	Format         int16               `json:"format"`
	KeyID          string              `json:"key_id"`
}

// NewEntry is r as the API shows it.
func NewEntry(r *chron.Row) Entry {
	e := Entry{ID: r.ID, Time: r.Time, CommittedAt: r.CommittedAt, Kind: string(r.Kind), Actor: r.Actor,
		AgentName: r.AgentName, AgentNamespace: r.AgentNamespace, AgentUID: r.AgentUID, Org: r.Org, Action: r.Action,
		Context: r.Context, Outcome: r.Outcome, Reason: r.Reason, Message: r.Message, Anchor: r.Anchor,
		SkillVersionID: r.SkillVersionID, SkillDigest: r.SkillDigest, Policies: r.Policies, SkillRules: r.SkillRules,
		Replica: r.Replica, RequestID: r.RequestID, Stream: r.Stream, Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash,
		Format: r.Format, KeyID: r.KeyID}
	if e.Context == nil {
		e.Context = map[string]any{}
	}
	if e.Policies == nil {
		e.Policies = []chron.PolicyMatch{}
	}
	if e.SkillRules == nil {
		e.SkillRules = []string{}
	}
	return e
}

// csvHeader names the CSV export's columns, one per Entry field.
var csvHeader = []string{"id", "time", "committed_at", "kind", "actor", "agent_name", "agent_namespace", "agent_uid",
	"org", "action", "context", "outcome", "reason", "message", "anchor", "skill_version_id", "skill_digest",
	"policies", "skill_rules", "replica", "request_id", "stream", "seq", "prev_hash", "hash", "format", "key_id"}

// csvRecord is e's cells in csvHeader's order: lists and objects as JSON,
// text cells made safe for spreadsheets (csvCell).
func (e *Entry) csvRecord() []string {
	js := func(v any) string {
		b, _ := json.Marshal(v) // decoded from JSON: it encodes again
		return string(b)
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	rec := []string{e.ID, ts(e.Time), ts(e.CommittedAt), e.Kind, e.Actor, e.AgentName, e.AgentNamespace, e.AgentUID,
		e.Org, e.Action, js(e.Context), e.Outcome, e.Reason, e.Message, e.Anchor, e.SkillVersionID, e.SkillDigest,
		js(e.Policies), js(e.SkillRules), e.Replica, e.RequestID, e.Stream, strconv.FormatInt(e.Seq, 10), e.PrevHash,
		e.Hash, strconv.Itoa(int(e.Format)), e.KeyID}
	for i, c := range rec {
		rec[i] = csvCell(c)
	}
	return rec
}

// csvCell defuses formula injection (OWASP "CSV Injection"): a spreadsheet
// runs a cell that starts with = + - @ (or a tab or line break before
// one) as a formula, and every text cell here comes from agents or users.
// A leading apostrophe makes it text; the NDJSON export is the exact one.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r\n", rune(s[0])) {
		return "'" + s
	}
	return s
}
