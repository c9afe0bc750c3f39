package kubectlclaiim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/cli-runtime/pkg/printers"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

// Rows travel as console.Entry, the Chron read API's shape, whichever way
// they were read: scripts see one shape with -o json|yaml, and the
// tables are drawn from it.

// entryPrinter prints rows as they are read. A table gets its header once
// and each batch as it comes (chron.PrintTablePage: `claiim chron list`'s
// table); JSON and YAML either gather every row into one {"items": [...]}
// (ls) or print each row as its own document as it comes (tail).
type entryPrinter struct {
	o      *Options
	p      printers.ResourcePrinter // nil: a table
	each   bool
	header bool // printed
	items  []console.Entry
}

func (o *Options) entryPrinter(each bool) (*entryPrinter, error) {
	p, err := o.printer()
	if err != nil {
		return nil, err
	}
	return &entryPrinter{o: o, p: p, each: each}, nil
}

// start prints the table's header, if it is a table and not done yet.
func (e *entryPrinter) start() {
	if e.p == nil && !e.header {
		chron.PrintTablePage(e.o.Out, nil, true)
		e.header = true
	}
}

// batch prints rows read together.
func (e *entryPrinter) batch(rows []console.Entry) error {
	switch {
	case e.p == nil:
		if len(rows) > 0 || !e.header {
			conv := make([]chron.Row, len(rows))
			for i := range rows {
				conv[i] = entryRow(&rows[i])
			}
			chron.PrintTablePage(e.o.Out, conv, !e.header)
			e.header = true
		}
	case e.each:
		for i := range rows {
			if err := e.o.printWith(e.p, rows[i]); err != nil {
				return err
			}
		}
	default:
		e.items = append(e.items, rows...)
	}
	return nil
}

// end prints what was gathered.
func (e *entryPrinter) end() error {
	if e.p == nil || e.each {
		return nil
	}
	items := e.items
	if items == nil {
		items = []console.Entry{}
	}
	return e.o.printWith(e.p, map[string][]console.Entry{"items": items})
}

// entries is rows as the API shows them.
func entries(rows []chron.Row) []console.Entry {
	out := make([]console.Entry, len(rows))
	for i := range rows {
		out[i] = console.NewEntry(&rows[i])
	}
	return out
}

// entryRow is e back as a chron.Row, for chron's table.
func entryRow(e *console.Entry) chron.Row {
	return chron.Row{
		Record: chron.Record{ID: e.ID, Time: e.Time, Kind: chron.Kind(e.Kind), Actor: e.Actor, AgentName: e.AgentName,
			AgentNamespace: e.AgentNamespace, AgentUID: e.AgentUID, Org: e.Org, Action: e.Action, Context: e.Context,
			Outcome: e.Outcome, Reason: e.Reason, Message: e.Message, Anchor: e.Anchor, SkillVersionID: e.SkillVersionID,
			SkillDigest: e.SkillDigest, Policies: e.Policies, SkillRules: e.SkillRules, Replica: e.Replica, RequestID: e.RequestID},
		Stream: e.Stream, Seq: e.Seq, PrevHash: e.PrevHash, Hash: e.Hash, CommittedAt: e.CommittedAt, Format: e.Format, KeyID: e.KeyID,
	}
}

// rowTable is one row, a field a line.
func rowTable(w io.Writer, r *console.Entry) {
	agent := r.AgentName
	if agent != "" && r.AgentNamespace != "" {
		agent = r.AgentNamespace + "/" + agent
	}
	var pols []string
	for _, p := range r.Policies {
		pol := fmt.Sprintf("%s/%s (v%d) %s", p.Name, p.Rule, p.Version, p.Effect)
		if p.Enforcement != "" {
			pol += " (" + p.Enforcement + ": would deny, not enforced)"
		}
		pols = append(pols, pol)
	}
	rows(w,
		[]string{"ID", r.ID},
		[]string{"TIME", r.Time.UTC().Format(time.RFC3339Nano)},
		[]string{"KIND", r.Kind},
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

// verifyReport writes the console's verification as `claiim chron
// verify` writes its own, and fails when the log is not intact.
func verifyReport(w io.Writer, r *console.VerifyResponse) error {
	fmt.Fprintf(w, "checked %d rows in %d streams against %d signed checkpoints\n", r.Rows, r.Streams, r.Checkpoints)
	if r.Unkeyed > 0 {
		fmt.Fprintf(w, "note: %d keyed rows were checked by their links only (the console has no chain key for them)\n", r.Unkeyed)
	}
	if r.Offline {
		fmt.Fprintln(w, "note: offline: the console verifies the database alone; rows cut from a stream's tail, and streams rewritten whole, cannot be seen without the checkpoints")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "TAMPERED stream %s seq %d (id %s): %s\n", p.Stream, p.Seq, p.ID, p.What)
	}
	return verifyResult(w, r)
}

// verifyResult is the verdict, for any output format.
func verifyResult(w io.Writer, r *console.VerifyResponse) error {
	if !r.OK {
		return fmt.Errorf("Chron failed verification: %d problem(s); see docs/security.md, Verifying Chron", len(r.Problems))
	}
	if w != nil {
		fmt.Fprintln(w, "OK: every stream's hash chain is intact and reaches its signed checkpoint")
	}
	return nil
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
