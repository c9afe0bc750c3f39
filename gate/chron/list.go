package chron

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Filter selects rows for List and ListPage. Empty fields match
// everything; Since is inclusive, Until exclusive.
type Filter struct {
	Agent     string // agent name
	Namespace string // agent namespace
	Org       string // one org; with Orgs, rows must match both
	// Orgs, when not nil, restricts rows to these orgs, and to rows with
	// no org (control-plane rows: PIM, admission, tokens) when NoOrg is
	// set; an empty Orgs without NoOrg matches nothing. Nil Orgs (and
	// NoOrg ignored) means every org and none.
	Orgs    []string
	NoOrg   bool
	Outcome string // ALLOW | DENY
	Action  string
	Kind    string
	Reason  string
	Since   time.Time
	Until   time.Time
	Limit   int // default 100, at most 1000
	// OldestFirst lists in commit order; the default is newest first.
	OldestFirst bool
	After       string // opaque cursor: a Next or Tail of an earlier page
}

// Page bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// rowColumns reads a row back. coalesce keeps a NULL written by someone who
// bypassed the constraints from breaking the read; Verify counts the NULLs
// separately (nullsColumn) and reports that row as changed.
const rowColumns = `coalesce(id, ''), coalesce(stream, ''), coalesce(seq, 0), coalesce(time, 'epoch'),
	coalesce(kind, ''), coalesce(actor, ''), coalesce(agent_name, ''), coalesce(agent_namespace, ''),
	coalesce(agent_uid, ''), coalesce(org, ''), coalesce(action, ''), coalesce(context::text, '{}'),
	coalesce(outcome, ''), coalesce(reason, ''), coalesce(message, ''), coalesce(anchor, ''),
	coalesce(skill_version_id, ''), coalesce(skill_digest, ''), coalesce(policies::text, '[]'),
	coalesce(skill_rules::text, '[]'), coalesce(replica, ''), coalesce(request_id, ''),
	coalesce(prev_hash, ''), coalesce(hash, ''), coalesce(committed_at, 'epoch'), coalesce(format, 0),
	coalesce(key_id, '')`

const nullsColumn = `num_nulls(id, stream, seq, time, kind, actor, agent_name, agent_namespace, agent_uid, org,
	action, context, outcome, reason, message, anchor, skill_version_id, skill_digest, policies, skill_rules,
	replica, request_id, prev_hash, hash, committed_at, format, key_id)`

// rawRow is a row as read, JSON columns still as text.
type rawRow struct {
	Row
	ctxJSON, polJSON, rulesJSON string
}

func (r *rawRow) dest() []any {
	return []any{&r.ID, &r.Stream, &r.Seq, &r.Time, &r.Kind, &r.Actor, &r.AgentName, &r.AgentNamespace,
		&r.AgentUID, &r.Org, &r.Action, &r.ctxJSON, &r.Outcome, &r.Reason, &r.Message, &r.Anchor,
		&r.SkillVersionID, &r.SkillDigest, &r.polJSON, &r.rulesJSON, &r.Replica, &r.RequestID,
		&r.PrevHash, &r.Hash, &r.CommittedAt, &r.Format, &r.KeyID}
}

// decode fills the typed JSON fields and puts times in UTC, the way Write
// returns them.
func (r *rawRow) decode() (Row, error) {
	row := r.Row
	row.Time = row.Time.UTC()
	row.CommittedAt = row.CommittedAt.UTC()
	row.Context, row.Policies, row.SkillRules = nil, nil, nil
	var ctx map[string]any
	if err := json.Unmarshal([]byte(r.ctxJSON), &ctx); err != nil {
		return Row{}, fmt.Errorf("chron: row %s: context: %w", r.ID, err)
	}
	if len(ctx) > 0 {
		row.Context = ctx
	}
	if err := json.Unmarshal([]byte(r.polJSON), &row.Policies); err != nil {
		return Row{}, fmt.Errorf("chron: row %s: policies: %w", r.ID, err)
	}
	if len(row.Policies) == 0 {
		row.Policies = nil
	}
	if err := json.Unmarshal([]byte(r.rulesJSON), &row.SkillRules); err != nil {
		return Row{}, fmt.Errorf("chron: row %s: skill_rules: %w", r.ID, err)
	}
	if len(row.SkillRules) == 0 {
		row.SkillRules = nil
	}
	return row, nil
}

// storedRow is a row read back with its context's canonical JSON, which
// a duplicate is compared by.
type storedRow struct {
	Row
	ctxJSON []byte
}

// lookup returns the stored rows with the given IDs.
func lookup(ctx context.Context, pool *pgxpool.Pool, ids []string) (map[string]storedRow, error) {
	rows, err := pool.Query(ctx, "SELECT "+rowColumns+" FROM chron_records WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	out := map[string]storedRow{}
	var raw rawRow
	_, err = pgx.ForEachRow(rows, raw.dest(), func() error {
		row, err := raw.decode()
		if err != nil {
			return err
		}
		ctxJSON, err := canonFromJSON([]byte(raw.ctxJSON))
		if err != nil {
			return fmt.Errorf("chron: row %s: context: %w", row.ID, err)
		}
		out[row.ID] = storedRow{Row: row, ctxJSON: ctxJSON}
		return nil
	})
	return out, err
}

// List returns one page of rows matching f (ListPage) and the cursor of
// the next page, empty after the last.
func List(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Row, string, error) {
	p, err := ListPage(ctx, pool, f)
	return p.Rows, p.Next, err
}

// PrintTable writes rows as the seed's Chron view shows them: TIME, AGENT,
// ACTION, OUTCOME, ANCHOR, POLICY VERSION, SKILL VERSION, plus REASON.
// Control-plane rows have no agent; their AGENT column shows the actor.
func PrintTable(w io.Writer, rows []Row) { PrintTablePage(w, rows, true) }

// PrintTablePage is PrintTable for one page of many: the header only on
// the first, each page aligned by itself, so a long listing streams.
func PrintTablePage(w io.Writer, rows []Row, first bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if first {
		fmt.Fprintln(tw, "TIME\tAGENT\tACTION\tOUTCOME\tANCHOR\tPOLICY VERSION\tSKILL VERSION\tREASON")
	}
	for _, r := range rows {
		agent := r.AgentName
		if agent == "" {
			agent = r.Actor
		}
		var pols []string
		for _, p := range r.Policies {
			pol := p.Name + "@" + strconv.FormatInt(p.Version, 10)
			if p.Enforcement != "" {
				pol += "(" + strings.ToLower(p.Enforcement) + ")" // would have denied; decided nothing
			}
			pols = append(pols, pol)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Time.UTC().Format(time.RFC3339), cell(agent), cell(r.Action), cell(r.Outcome), cell(r.Anchor),
			cell(strings.Join(pols, ",")), cell(r.SkillVersionID), cell(r.Reason))
	}
	_ = tw.Flush()
}

// cell keeps one value on one line and one column: tabs and newlines in
// stored text would break the table.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
