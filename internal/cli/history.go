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
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/history"
)

const historyUsage = `Usage:
  claiim history KIND/NAME [-n NAMESPACE] [--uid UID]                  every recorded generation
  claiim history KIND/NAME --generation N                             that generation's spec, as YAML
  claiim history KIND/NAME --diff A B                                 a unified diff of generations A and B
KIND is aiorg, skill, policy or agent (an agent also as agent/NAMESPACE/NAME).
A Chron decision row names each policy's generation: claiim history policy/NAME --generation N
shows what that policy said then. Reads DATABASE_URL (or --database-url): the reader's role is enough.
`

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
	if err := history.ParseTarget(target, &q); err != nil {
		return err
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
	return history.Show(ctx, pool, q, diff, out)
}
