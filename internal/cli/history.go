package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/yaml"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/linediff"
)

const historyUsage = `Usage:
  claiim history KIND/NAME [-n NAMESPACE] [--uid UID]                  every recorded generation
  claiim history KIND/NAME --generation N                             that generation's spec, as YAML
  claiim history KIND/NAME --diff A B                                 a unified diff of generations A and B
KIND is aiorg, skill, policy or agent (an agent also as agent/NAMESPACE/NAME).
A Chron decision row names each policy's generation: claiim history policy/NAME --generation N
shows what that policy said then. Reads DATABASE_URL (or --database-url): the reader's role is enough.
`

// historyKinds are the names KIND may be given as.
var historyKinds = map[string]string{
	"aiorg": "AIOrg", "aiorgs": "AIOrg",
	"skill": "Skill", "skills": "Skill",
	"policy": "Policy", "policies": "Policy", "pol": "Policy",
	"agent": "Agent", "agents": "Agent",
}

// RunHistory runs `claiim history`, printing to out.
func RunHistory(args []string, out io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(os.Stderr, historyUsage)
		return errors.New("missing KIND/NAME (e.g. policy/no-production-deploys)")
	}
	target, rest := args[0], args[1:]
	// --diff takes two values, which the flag package cannot.
	var diff []int64
	for i := 0; i < len(rest); i++ {
		if rest[i] != "--diff" && rest[i] != "-diff" {
			continue
		}
		if i+3 > len(rest) {
			return errors.New("--diff needs two generations: --diff A B")
		}
		for _, s := range rest[i+1 : i+3] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("--diff needs two generations, positive numbers: --diff A B (not %q)", s)
			}
			diff = append(diff, n)
		}
		rest = append(rest[:i:i], rest[i+3:]...)
		break
	}
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron (default $DATABASE_URL)")
	var q chron.HistoryQuery
	fs.StringVar(&q.Namespace, "n", "", "the agent's namespace")
	fs.StringVar(&q.Namespace, "namespace", "", "the agent's namespace")
	fs.StringVar(&q.UID, "uid", "", "only the object with this UID (a deleted and re-created object is another)")
	fs.Int64Var(&q.Generation, "generation", 0, "print this generation's spec")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected %q: flags follow KIND/NAME (%s)", fs.Arg(0), strings.TrimSpace(strings.Split(historyUsage, "\n")[1]))
	}
	if err := parseTarget(target, &q); err != nil {
		return err
	}
	if len(diff) > 0 && q.Generation > 0 {
		return errors.New("--generation and --diff are either-or")
	}
	if *dbURL == "" {
		return errors.New("no Chron database: set DATABASE_URL or --database-url")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-history"})
	if err != nil {
		return err
	}
	defer pool.Close()
	switch {
	case len(diff) > 0:
		return printDiff(ctx, pool, q, diff[0], diff[1], out)
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

// parseTarget reads KIND/NAME or agent/NAMESPACE/NAME into q.
func parseTarget(s string, q *chron.HistoryQuery) error {
	parts := strings.Split(s, "/")
	kind, ok := historyKinds[strings.ToLower(parts[0])]
	switch {
	case !ok:
		return fmt.Errorf("%q: the history is kept for aiorg, skill, policy and agent (KIND/NAME)", parts[0])
	case len(parts) == 3 && kind == "Agent":
		if q.Namespace != "" && q.Namespace != parts[1] {
			return fmt.Errorf("agent %s is in namespace %s, not -n %s", parts[2], parts[1], q.Namespace)
		}
		q.Namespace, parts = parts[1], []string{parts[0], parts[2]}
	case len(parts) != 2 || parts[1] == "":
		return fmt.Errorf("%q: give KIND/NAME, e.g. policy/no-production-deploys", s)
	}
	q.Kind, q.Name = kind, parts[1]
	if kind == "Agent" && q.Namespace == "" {
		return fmt.Errorf("agent %s: give its namespace (agent/NAMESPACE/NAME or -n NAMESPACE)", q.Name)
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
