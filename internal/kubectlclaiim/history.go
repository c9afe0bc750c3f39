package kubectlclaiim

// `kubectl claiim history`: the generations Chron keeps of an AIOrg,
// Skill, Policy or Agent, as `claiim history` prints them (internal/history).

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/history"
)

func newHistoryCommand(o *Options) *cobra.Command {
	var q chron.HistoryQuery
	var diff bool
	var databaseURL string
	cmd := &cobra.Command{
		Use:   "history KIND/NAME [--generation N | --diff A B]",
		Short: "Every stored generation of an AIOrg, Skill, Policy or Agent: who changed it under which PIM session; one's spec; a diff",
		Long: `history lists the generations the manager kept (generation, time, who changed it,
PIM session, spec digest); --generation N prints that generation's spec as YAML
(a Chron decision row names its policies' generations); --diff A B a unified
diff. KIND is aiorg, skill, policy or agent (in the namespace of -n or your
kubeconfig's). It reads Chron's database as its reader role (--database-url,
or $DATABASE_URL).`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gens []int64
			switch {
			case diff && len(args) != 3:
				return errors.New("--diff needs two generations: history KIND/NAME --diff A B")
			case !diff && len(args) > 1:
				return fmt.Errorf("unexpected %q: two generations go with --diff A B", args[1])
			}
			for _, s := range args[1:] {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("--diff needs two generations, positive numbers: --diff A B (not %q)", s)
				}
				gens = append(gens, n)
			}
			err := history.ParseTarget(args[0], &q)
			if errors.Is(err, history.ErrNoNamespace) { // an agent: kubectl's namespace
				if q.Namespace, err = o.Namespace(); err == nil {
					err = history.ParseTarget(args[0], &q)
				}
			}
			if err != nil {
				return err
			}
			if databaseURL == "" {
				databaseURL = os.Getenv("DATABASE_URL")
			}
			if databaseURL == "" {
				return errors.New("history reads Chron's database: pass --database-url (or set DATABASE_URL), the reader role's URL")
			}
			pool, err := chron.OpenPool(cmd.Context(), databaseURL, chron.PoolOptions{Application: "kubectl-claiim"})
			if err != nil {
				return err
			}
			defer pool.Close()
			return history.Show(cmd.Context(), pool, q, gens, o.Out)
		},
	}
	fs := cmd.Flags()
	fs.Int64Var(&q.Generation, "generation", 0, "print this generation's spec, as YAML")
	fs.BoolVar(&diff, "diff", false, "a unified diff of the two generations that follow KIND/NAME")
	fs.StringVar(&q.UID, "uid", "", "only the object with this UID (a deleted and re-created object is another)")
	fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL URL of Chron as its reader role (default $DATABASE_URL)")
	return cmd
}
