package kubectlclaiim

// `kubectl claiim chron`: Chron read from its database with the reader
// role. The table and verify are `claiim chron list|verify` themselves
// (internal/cli); JSON, YAML and show read the rows through gate/chron,
// which that command uses. Reading through the console's Chron API, with
// no database credentials, is not here yet.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/cli"
	"github.com/claiim/claiim-operator/internal/console"
)

func newChronCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chron",
		Short: "Read and verify Chron, the audit log (--database-url: the reader role)",
	}
	cmd.AddCommand(newChronListCommand(o), newChronShowCommand(o), newChronVerifyCommand(o))
	return cmd
}

// chronFlags are the row filters of `claiim chron list`.
type chronFlags struct {
	url, agent, org, outcome, action, kind, since, until string
	limit                                                int
}

// listFlags are the names `claiim chron list` knows, passed through.
var listFlags = []string{"database-url", "agent", "org", "outcome", "action", "kind", "since", "until", "limit"}

func (f *chronFlags) bind(fs *pflag.FlagSet, since string, limit int) {
	fs.StringVar(&f.url, "database-url", "", "PostgreSQL URL of Chron, as its reader role (default $DATABASE_URL)")
	fs.StringVar(&f.agent, "agent", "", "only this agent (NAME or NAMESPACE/NAME)")
	fs.StringVar(&f.org, "org", "", "only this AI org")
	fs.StringVar(&f.outcome, "outcome", "", "ALLOW or DENY")
	fs.StringVar(&f.action, "action", "", "only this action")
	fs.StringVar(&f.kind, "kind", "", "only this kind of record (decision, pim.approved, ...)")
	fs.StringVar(&f.since, "since", since, "from this time (RFC 3339) or this long ago (e.g. 1h)")
	fs.StringVar(&f.until, "until", "", "up to this time (RFC 3339)")
	fs.IntVar(&f.limit, "limit", limit, "at most this many rows, newest first")
}

func newChronListCommand(o *Options) *cobra.Command {
	var f chronFlags
	cmd := &cobra.Command{
		Use:     "ls [filters]",
		Aliases: []string{"list"},
		Short:   "Chron rows, newest first: a table, or every field with -o json|yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Output == "" || o.Output == "table" {
				return cli.RunChron(append([]string{"list"}, passThrough(cmd.Flags(), nil, listFlags...)...), o.Out)
			}
			rows, err := f.read(cmd.Context(), "")
			if err != nil {
				return err
			}
			return o.print(rowList(rows), nil)
		},
	}
	f.bind(cmd.Flags(), "", 50)
	return cmd
}

func newChronShowCommand(o *Options) *cobra.Command {
	var f chronFlags
	cmd := &cobra.Command{
		Use:   "show ID [filters]",
		Short: "One Chron row with every field: context, matched rules, skill version, hash and chain position",
		Long: `show finds the row among those the filters select (by default the last 24 hours),
page by page: narrow them (--since, --agent) for an old row.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := f.read(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				return fmt.Errorf("no Chron row %s among the rows selected (since %s); widen --since", args[0], f.since)
			}
			r := rows[0]
			return o.print(console.NewEntry(&r), func(w io.Writer) { rowTable(w, r) })
		},
	}
	f.bind(cmd.Flags(), "24h", 0)
	_ = cmd.Flags().MarkHidden("limit")
	return cmd
}

func newChronVerifyCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every stream's hash chain and the signed checkpoints (claiim chron verify)",
		Long: `verify is 'claiim chron verify'. It reads the checkpoints from the Kubernetes
API with the kubeconfig's current context (--kubeconfig is honored, --context
is not); --offline checks the database alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Flags.Context != nil && *o.Flags.Context != "" {
				return errors.New("chron verify reads the Kubernetes API with the kubeconfig's current context; --context is not supported here")
			}
			if k := o.Flags.KubeConfig; k != nil && *k != "" {
				// internal/cli finds the cluster as controller-runtime does.
				if err := os.Setenv("KUBECONFIG", *k); err != nil {
					return err
				}
			}
			args := passThrough(cmd.Flags(), map[string]string{"manager-namespace": "namespace"},
				"database-url", "manager-namespace", "gate-namespace", "keys-from-secrets", "gate-keys", "manager-keys", "offline")
			return cli.RunChron(append([]string{"verify"}, args...), o.Out)
		},
	}
	fs := cmd.Flags()
	fs.String("database-url", "", "PostgreSQL URL of Chron, as its reader role (default $DATABASE_URL)")
	fs.String("manager-namespace", "", "the manager's namespace: its stream Leases, key Secret and public keys (default claiim-system)")
	fs.String("gate-namespace", "", "the gate's namespace (default: the manager's)")
	fs.Bool("keys-from-secrets", false, "also read the chain keys from the key Secrets (needs get on them) and recompute every keyed hash")
	fs.String("gate-keys", "", "a directory holding the gate's key Secret as files")
	fs.String("manager-keys", "", "a directory holding the manager's key Secret as files")
	fs.Bool("offline", false, "verify the database alone, without the Kubernetes API")
	return cmd
}

// passThrough turns the flags the user set among names into arguments for
// `claiim chron`, renamed where it names them differently.
func passThrough(fs *pflag.FlagSet, rename map[string]string, names ...string) []string {
	var out []string
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil || !f.Changed {
			continue
		}
		if to, ok := rename[n]; ok {
			n = to
		}
		out = append(out, "--"+n+"="+f.Value.String())
	}
	return out
}

// read pages through the rows the filters select, up to the limit (0: no
// limit); with id, it stops at that row and returns it alone.
func (f *chronFlags) read(ctx context.Context, id string) ([]chron.Row, error) {
	url := f.url
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if url == "" {
		return nil, errors.New("no Chron database: pass --database-url (the reader role) or set DATABASE_URL")
	}
	filter := chron.Filter{Org: f.org, Outcome: f.outcome, Action: f.action, Kind: f.kind, Agent: f.agent}
	if ns, name, ok := strings.Cut(f.agent, "/"); ok {
		filter.Namespace, filter.Agent = ns, name
	}
	var err error
	if filter.Since, err = when(f.since, time.Now()); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if f.until != "" {
		if filter.Until, err = time.Parse(time.RFC3339, f.until); err != nil {
			return nil, fmt.Errorf("--until: %w", err)
		}
	}
	pool, err := chron.OpenPool(ctx, url, chron.PoolOptions{Application: "kubectl-claiim"})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var out []chron.Row
	for {
		filter.Limit = 1000
		if f.limit > 0 {
			filter.Limit = min(1000, f.limit-len(out))
		}
		page, next, err := chron.List(ctx, pool, filter)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if id == "" {
				out = append(out, r)
			} else if r.ID == id {
				return []chron.Row{r}, nil
			}
		}
		if next == "" || (f.limit > 0 && len(out) >= f.limit) {
			return out, nil
		}
		filter.After = next
	}
}

// when reads a time as RFC 3339 or as a duration before now.
func when(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}
