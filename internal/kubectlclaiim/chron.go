package kubectlclaiim

// `kubectl claiim chron`: Chron through the console's read API as the
// person, with their own bearer token (--console), or from its database
// as the reader role (--database-url). Both show the same rows in the
// same shapes; tail and export follow the API only.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

// chronOptions say where Chron is read.
type chronOptions struct {
	o                                          *Options
	console, consoleCA, tokenFile, databaseURL string
}

func newChronCommand(o *Options) *cobra.Command {
	c := &chronOptions{o: o}
	cmd := &cobra.Command{
		Use:   "chron",
		Short: "Read and verify Chron, the audit log: through the console (--console) or its database (--database-url)",
		Long: `chron reads Chron through the console's API as you, with your own bearer token
(--console URL, or $CLAIIM_CONSOLE_URL): you see the orgs RBAC lets you read.
The token is your kubeconfig's (a token, a token file, or a credential plugin),
or --token / --token-file. Without a console, it reads the database as its
reader role (--database-url, or $DATABASE_URL): every row.`,
	}
	fs := cmd.PersistentFlags()
	fs.StringVar(&c.console, "console", "", "the console's URL, to read through its API as yourself (default $CLAIIM_CONSOLE_URL)")
	fs.StringVar(&c.consoleCA, "console-ca", "", "PEM file of the CA of the console's certificate (default: the system's)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding your bearer token for the console (default: your kubeconfig's, or --token)")
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL of Chron as its reader role, instead of the console (default $DATABASE_URL)")
	cmd.AddCommand(newChronListCommand(c), newChronShowCommand(c), newChronTailCommand(c), newChronExportCommand(c), newChronVerifyCommand(c))
	return cmd
}

// target is where to read: the console's URL or the database's, one of
// them. A flag wins over the other's environment variable; the console's
// variable wins over the database's.
func (c *chronOptions) target() (consoleURL, databaseURL string, err error) {
	consoleURL, databaseURL = c.console, c.databaseURL
	switch {
	case consoleURL != "" && databaseURL != "":
		return "", "", errors.New("give --console or --database-url, not both")
	case consoleURL == "" && databaseURL == "":
		if consoleURL = os.Getenv("CLAIIM_CONSOLE_URL"); consoleURL == "" {
			databaseURL = os.Getenv("DATABASE_URL")
		}
	}
	switch {
	case consoleURL == "" && databaseURL == "":
		return "", "", errors.New("no Chron to read: pass --console URL to read through the console's API as yourself (or set CLAIIM_CONSOLE_URL), " +
			"or --database-url URL to read the database as its reader role (or set DATABASE_URL)")
	case databaseURL != "" && (c.consoleCA != "" || c.tokenFile != ""):
		return "", "", errors.New("--console-ca and --token-file are for the console; this reads the database (--database-url or DATABASE_URL)")
	}
	return consoleURL, databaseURL, nil
}

// chronReader reads rows, from the console or the database.
type chronReader interface {
	// list hands page each page of the rows q selects, newest first, up
	// to limit (0: every row); the first page even when empty.
	list(ctx context.Context, q *chronQuery, limit int, page func([]console.Entry) error) error
	// entry is the row with this id (among those q selects, where the
	// reader cannot fetch one row by its id).
	entry(ctx context.Context, id string, q *chronQuery) (console.Entry, error)
	close()
}

func (c *chronOptions) reader(ctx context.Context) (chronReader, error) {
	consoleURL, databaseURL, err := c.target()
	if err != nil {
		return nil, err
	}
	if consoleURL != "" {
		return c.o.newConsoleClient(consoleURL, c.consoleCA, c.tokenFile)
	}
	pool, err := chron.OpenPool(ctx, databaseURL, chron.PoolOptions{Application: "kubectl-claiim"})
	if err != nil {
		return nil, err
	}
	return &chronDB{pool: pool}, nil
}

// consoleOnly is the console for the commands that only it serves.
func (c *chronOptions) consoleOnly(command string) (*consoleClient, error) {
	consoleURL, _, err := c.target()
	if err != nil {
		return nil, err
	}
	if consoleURL == "" {
		return nil, fmt.Errorf("chron %s reads through the console's API: pass --console URL (or set CLAIIM_CONSOLE_URL); "+
			"from the database, use chron ls", command)
	}
	return c.o.newConsoleClient(consoleURL, c.consoleCA, c.tokenFile)
}

func newChronListCommand(c *chronOptions) *cobra.Command {
	var q chronQuery
	var limit int
	cmd := &cobra.Command{
		Use:     "ls [filters]",
		Aliases: []string{"list"},
		Short:   "Chron rows, newest first: a table, or every field with -o json|yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return errors.New("--limit must be 0 (every row) or more")
			}
			p, err := c.o.entryPrinter(false)
			if err != nil {
				return err
			}
			r, err := c.reader(cmd.Context())
			if err != nil {
				return err
			}
			defer r.close()
			if err := r.list(cmd.Context(), &q, limit, p.batch); err != nil {
				return err
			}
			return p.end()
		},
	}
	q.bind(cmd.Flags(), true, "")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many rows, newest first; 0 lists every matching row")
	return cmd
}

func newChronShowCommand(c *chronOptions) *cobra.Command {
	var q chronQuery
	cmd := &cobra.Command{
		Use:   "show ID [filters]",
		Short: "One Chron row with every field: context, matched rules, skill version, hash and chain position",
		Long: `show fetches the row by its id from the console. From the database, it finds
the row among those the filters select (by default the last 24 hours), page
by page: narrow them (--since, --agent) for an old row.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := c.reader(cmd.Context())
			if err != nil {
				return err
			}
			defer r.close()
			if _, api := r.(*consoleClient); api && q.changed(cmd.Flags()) {
				return errors.New("through the console, show fetches the row by its id alone: the filters are for --database-url")
			}
			e, err := r.entry(cmd.Context(), args[0], &q)
			if err != nil {
				return err
			}
			return c.o.print(e, func(w io.Writer) { rowTable(w, &e) })
		},
	}
	q.bind(cmd.Flags(), true, "24h")
	return cmd
}

func newChronTailCommand(c *chronOptions) *cobra.Command {
	var q chronQuery
	cmd := &cobra.Command{
		Use:   "tail [filters]",
		Short: "Chron rows as they commit, until interrupted (through the console)",
		Long: `tail prints the rows the filters select as they commit, from now on, in the
output of ls (-o json|yaml: one document per row). When the console ends the
stream it resumes after the last row printed. Ctrl-C ends it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := c.o.entryPrinter(true)
			if err != nil {
				return err
			}
			api, err := c.consoleOnly("tail")
			if err != nil {
				return err
			}
			defer api.close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			warn := func(msg string) { fmt.Fprintln(c.o.ErrOut, "warning: "+msg) }
			return api.tail(ctx, q.values(), p.start, p.batch, warn)
		},
	}
	q.bind(cmd.Flags(), false, "")
	return cmd
}

func newChronExportCommand(c *chronOptions) *cobra.Command {
	var q chronQuery
	var format string
	cmd := &cobra.Command{
		Use:   "export [filters] [--format ndjson|csv]",
		Short: "Every matching Chron row, oldest first, to standard output (through the console)",
		Long: `export streams every row the filters select, in commit order: NDJSON (one
entry per line, every field, exact) or CSV (cells that a spreadsheet would run
as formulas get a leading '). An export cut off midway fails: what was written
is incomplete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "ndjson" && format != "csv" {
				return fmt.Errorf("--format %q: use ndjson or csv", format)
			}
			api, err := c.consoleOnly("export")
			if err != nil {
				return err
			}
			defer api.close()
			v := q.values()
			v.Set("format", format)
			return api.export(cmd.Context(), v, c.o.Out)
		},
	}
	q.bind(cmd.Flags(), true, "")
	cmd.Flags().StringVar(&format, "format", "ndjson", "ndjson or csv")
	return cmd
}

// chronQuery is the row filters every listing takes.
type chronQuery struct {
	agent, outcome, action, reason, kind, since, until string
	orgs                                               []string
}

var queryFlags = []string{"agent", "org", "outcome", "action", "reason", "kind", "since", "until"}

func (q *chronQuery) bind(fs *pflag.FlagSet, times bool, since string) {
	fs.StringVar(&q.agent, "agent", "", "only this agent (NAME or NAMESPACE/NAME)")
	fs.StringArrayVar(&q.orgs, "org", nil, `only these AI orgs (repeat it; "-": rows with no org, such as PIM)`)
	fs.StringVar(&q.outcome, "outcome", "", "ALLOW or DENY")
	fs.StringVar(&q.action, "action", "", "only this action")
	fs.StringVar(&q.reason, "reason", "", "only this reason code (POLICY_DENY, OWN_AIORG, ...)")
	fs.StringVar(&q.kind, "kind", "", "only this kind of record (decision, pim.approved, ...)")
	if times {
		fs.StringVar(&q.since, "since", since, "from this time (RFC 3339) or this long ago (e.g. 1h)")
		fs.StringVar(&q.until, "until", "", "up to this time (RFC 3339)")
	}
}

// changed says whether any filter was given.
func (q *chronQuery) changed(fs *pflag.FlagSet) bool {
	for _, n := range queryFlags {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}

// values is q as the API's parameters.
func (q *chronQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"agent": q.agent, "outcome": q.outcome, "action": q.action, "reason": q.reason,
		"kind": q.kind, "since": q.since, "until": q.until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for _, o := range q.orgs {
		v.Add("org", o)
	}
	return v
}
