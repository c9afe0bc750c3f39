package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
)

const chronUsage = `Usage:
  claiim chron list   [--agent NS/NAME] [--org ORG] [--outcome ALLOW|DENY] [--action A] [--reason R] [--kind K]
                      [--since DUR|TIME] [--until TIME] [--limit N] [--oldest-first]
  claiim chron verify [--namespace NS] [--gate-namespace NS] [--keys-from-secrets | --gate-keys DIR --manager-keys DIR] [--offline]
  claiim chron verify --file FILE [--keys DIR | --gate-keys DIR --manager-keys DIR] [--public-keys FILE]
  claiim chron export (--stream S [--from-seq A] [--to-seq B] | --before TIME) -o FILE [verify's key and namespace flags]
  claiim chron migrate [--gate-role NAME [--gate-password-file F]] [--manager-role ...] [--reader-role ...]
Every command but verify --file reads DATABASE_URL (or --database-url); migrate needs the owner's.
migrate also creates or updates the components' login roles: each from its
--X-role and --X-password-file flags, else from the user and password of
$CLAIIM_GATE_DATABASE_URL, $CLAIIM_MANAGER_DATABASE_URL, $CLAIIM_READER_DATABASE_URL.
`

// RunChron runs `claiim chron list|verify|export|migrate`, printing to out.
func RunChron(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, chronUsage)
		return errors.New("missing chron command")
	}
	fs := flag.NewFlagSet("chron "+args[0], flag.ContinueOnError)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron (default $DATABASE_URL)")
	var f chron.Filter
	var since, until string
	limit := 50
	var logins []*loginFlags
	var vf *verifyOpts
	var ff *fileOpts
	var ef *exportOpts
	switch args[0] {
	case "list":
		fs.StringVar(&f.Agent, "agent", "", "only this agent (NAME or NAMESPACE/NAME)")
		fs.StringVar(&f.Org, "org", "", "only this AI org")
		fs.StringVar(&f.Outcome, "outcome", "", "ALLOW or DENY")
		fs.StringVar(&f.Action, "action", "", "only this action")
		fs.StringVar(&f.Kind, "kind", "", "only this kind of record (decision, pim.approved, ...)")
		fs.StringVar(&f.Reason, "reason", "", "only this reason code (POLICY_DENY, OWN_AIORG, ...)")
		fs.BoolVar(&f.OldestFirst, "oldest-first", false, "in commit order, oldest first (default: newest first)")
		fs.StringVar(&since, "since", "", "from this time (RFC 3339) or this long ago (e.g. 1h)")
		fs.StringVar(&until, "until", "", "up to this time (RFC 3339)")
		fs.IntVar(&limit, "limit", limit, "at most this many rows; 0 lists every matching row")
	case "verify":
		vf, ff = verifyFlags(fs), verifyFileFlags(fs)
	case "export":
		ef = exportFlags(fs)
	case "migrate":
		logins = bindMigrateFlags(fs)
	default:
		fmt.Fprint(os.Stderr, chronUsage)
		return fmt.Errorf("unknown chron command %q", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if ff != nil && *ff.file != "" {
		return runVerifyFile(vf, ff, out) // offline: no database
	}
	if ff != nil && (*ff.keys != "" || *ff.publicKeys != "") {
		return errors.New("--keys and --public-keys go with --file")
	}
	if *dbURL == "" {
		return errors.New("no Chron database: set DATABASE_URL or --database-url")
	}
	var err error
	if f.Since, err = parseTime(since, true); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = parseTime(until, false); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if ns, name, ok := cutAgent(f.Agent); ok {
		f.Namespace, f.Agent = ns, name
	}
	// A listing of everything may take longer than any bound; each of its
	// pages has its own (listAll).
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if args[0] != "list" && args[0] != "export" {
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	}
	defer cancel()
	pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-chron"})
	if err != nil {
		return err
	}
	defer pool.Close()

	switch args[0] {
	case "list":
		return listAll(ctx, pool, f, limit, out)
	case "verify":
		return runVerify(ctx, pool, vf, out)
	case "export":
		return runExport(ctx, pool, ef, out)
	case "migrate":
		return runMigrate(ctx, pool, logins, out)
	}
	return nil
}

// listAll prints every matching row up to limit (0: all), page by page,
// each page printed as it arrives.
func listAll(ctx context.Context, pool *pgxpool.Pool, f chron.Filter, limit int, out io.Writer) error {
	if limit < 0 {
		return errors.New("--limit must be 0 (every row) or more")
	}
	for n := 0; limit == 0 || n < limit; {
		f.Limit = chron.MaxLimit
		if limit > 0 {
			f.Limit = min(limit-n, chron.MaxLimit)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		p, err := chron.ListPage(pctx, pool, f)
		cancel()
		if err != nil {
			return err
		}
		if n == 0 || len(p.Rows) > 0 {
			chron.PrintTablePage(out, p.Rows, n == 0)
		}
		n += len(p.Rows)
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	return nil
}

func parseTime(s string, ago bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if ago {
		if d, err := time.ParseDuration(s); err == nil {
			return time.Now().Add(-d), nil
		}
	}
	return time.Parse(time.RFC3339, s)
}

func cutAgent(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}
