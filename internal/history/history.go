// Package history shows the history Chron keeps of AIOrgs, Skills,
// Policies and Agents (gate/chron history.go): the generations, one
// generation's spec, a diff of two. `claiim history` and `kubectl claiim
// history` both print with it.
package history

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/yaml"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/linediff"
)

// kinds are the names KIND may be given as.
var kinds = map[string]string{
	"aiorg": "AIOrg", "aiorgs": "AIOrg",
	"skill": "Skill", "skills": "Skill",
	"policy": "Policy", "policies": "Policy", "pol": "Policy",
	"agent": "Agent", "agents": "Agent",
}

// Show prints what q asks for: one generation's spec (q.Generation), a
// diff of two (diff, two generations), or every recorded generation.
func Show(ctx context.Context, pool *pgxpool.Pool, q chron.HistoryQuery, diff []int64, out io.Writer) error {
	switch {
	case len(diff) > 0 && q.Generation > 0:
		return errors.New("--generation and --diff are either-or")
	case len(diff) == 2:
		return printDiff(ctx, pool, q, diff[0], diff[1], out)
	case len(diff) > 0:
		return errors.New("--diff needs two generations: --diff A B")
	case q.Generation > 0:
		g, err := oneGeneration(ctx, pool, q, q.Generation)
		if err != nil {
			return err
		}
		return printSpec(g, out)
	}
	gens, err := chron.ListHistory(ctx, pool, q)
	if err != nil {
		return err
	}
	if len(gens) == 0 {
		return notRecorded(q, "")
	}
	return printGenerations(gens, out)
}

// ErrNoNamespace: an agent named without its namespace.
var ErrNoNamespace = errors.New("give its namespace")

// ParseTarget reads KIND/NAME or agent/NAMESPACE/NAME into q (whose
// Namespace may be set already, from a flag).
func ParseTarget(s string, q *chron.HistoryQuery) error {
	parts := strings.Split(s, "/")
	kind, ok := kinds[strings.ToLower(parts[0])]
	switch {
	case !ok:
		return fmt.Errorf("%q: the history is kept for aiorg, skill, policy and agent (KIND/NAME)", parts[0])
	case len(parts) == 3 && kind == "Agent" && parts[1] != "" && parts[2] != "":
		if q.Namespace != "" && q.Namespace != parts[1] {
			return fmt.Errorf("agent %s is in namespace %s, not -n %s", parts[2], parts[1], q.Namespace)
		}
		q.Namespace, parts = parts[1], []string{parts[0], parts[2]}
	case len(parts) != 2 || parts[1] == "":
		return fmt.Errorf("%q: give KIND/NAME, e.g. policy/no-production-deploys", s)
	}
	q.Kind, q.Name = kind, parts[1]
	if kind == "Agent" && q.Namespace == "" {
		return fmt.Errorf("agent %s: %w (agent/NAMESPACE/NAME or -n NAMESPACE)", q.Name, ErrNoNamespace)
	}
	if kind != "Agent" && q.Namespace != "" {
		return fmt.Errorf("%s is cluster-scoped: no namespace", kind)
	}
	return nil
}

func describe(q chron.HistoryQuery) string {
	if q.Namespace != "" {
		return q.Kind + " " + q.Namespace + "/" + q.Name
	}
	return q.Kind + " " + q.Name
}

func notRecorded(q chron.HistoryQuery, what string) error {
	return fmt.Errorf("no history of %s%s: the manager records each generation it sees stored (from Chron schema 5 on); "+
		"a generation it never saw is an object.gap row (claiim chron list --kind object.gap)", describe(q), what)
}

// oneGeneration is generation gen of the object q names; more than one
// object of that name having it (deleted and re-created) needs --uid.
func oneGeneration(ctx context.Context, pool *pgxpool.Pool, q chron.HistoryQuery, gen int64) (chron.Generation, error) {
	q.Generation = gen
	gens, err := chron.ListHistory(ctx, pool, q)
	if err != nil {
		return chron.Generation{}, err
	}
	switch len(gens) {
	case 0:
		return chron.Generation{}, notRecorded(q, fmt.Sprintf(" generation %d", gen))
	case 1:
		return gens[0], nil
	}
	var objs []string
	for _, g := range gens {
		objs = append(objs, fmt.Sprintf("uid %s (recorded %s)", g.UID, g.RecordedAt.UTC().Format(time.RFC3339)))
	}
	return chron.Generation{}, fmt.Errorf("%s generation %d was recorded for %d objects of that name (deleted and re-created): %s; choose one with --uid",
		describe(q), gen, len(gens), strings.Join(objs, ", "))
}

func author(g chron.Generation) (who, session string) {
	who, session = g.ChangedBy, g.PIMSession
	switch {
	case !g.Admitted:
		who = "(changed past admission)"
	case who == "":
		who = "(not named)"
	}
	if session == "" {
		session = "-"
	}
	return who, session
}

func printGenerations(gens []chron.Generation, out io.Writer) error {
	uids := map[string]bool{}
	for _, g := range gens {
		uids[g.UID] = true
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "GENERATION\tRECORDED\tCHANGED BY\tPIM SESSION\tDIGEST"
	if len(uids) > 1 {
		header += "\tUID"
	}
	fmt.Fprintln(tw, header)
	for _, g := range gens {
		who, session := author(g)
		line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s", g.Generation, g.RecordedAt.UTC().Format(time.RFC3339), cellText(who), cellText(session), g.Digest)
		if len(uids) > 1 {
			line += "\t" + g.UID
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// cellText keeps a value on its line of the table.
func cellText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func specYAML(g chron.Generation) (string, error) {
	b, err := yaml.JSONToYAML(g.Spec)
	if err != nil {
		return "", fmt.Errorf("%s %s generation %d: %w", g.Kind, g.Name, g.Generation, err)
	}
	return string(b), nil
}

func printSpec(g chron.Generation, out io.Writer) error {
	y, err := specYAML(g)
	if err != nil {
		return err
	}
	who, session := author(g)
	_, err = fmt.Fprintf(out, "# %s generation %d (uid %s), recorded %s\n# changed by %s, PIM session %s\n# spec %s\n%s",
		describe(chron.HistoryQuery{Kind: g.Kind, Namespace: g.Namespace, Name: g.Name}), g.Generation, g.UID,
		g.RecordedAt.UTC().Format(time.RFC3339), cellText(who), cellText(session), g.Digest, y)
	return err
}

// printDiff writes a unified diff of two generations' specs as YAML.
func printDiff(ctx context.Context, pool *pgxpool.Pool, q chron.HistoryQuery, a, b int64, out io.Writer) error {
	from, err := oneGeneration(ctx, pool, q, a)
	if err != nil {
		return err
	}
	if q.UID == "" {
		q.UID = from.UID // the same object's generation b
	}
	to, err := oneGeneration(ctx, pool, q, b)
	if err != nil {
		return err
	}
	if from.Digest == to.Digest {
		_, err := fmt.Fprintf(out, "generations %d and %d of %s have the same spec (%s)\n", a, b, describe(q), from.Digest)
		return err
	}
	fy, err := specYAML(from)
	if err != nil {
		return err
	}
	ty, err := specYAML(to)
	if err != nil {
		return err
	}
	name := strings.ToLower(q.Kind) + "/" + q.Name
	return linediff.WriteUnified(out, fmt.Sprintf("%s generation %d", name, a), fmt.Sprintf("%s generation %d", name, b),
		linediff.Diff(fy, ty), 3)
}
