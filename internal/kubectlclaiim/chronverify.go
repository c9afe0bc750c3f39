package kubectlclaiim

// `chron verify`: the console's verification (it holds the keys and reads
// the checkpoints), or `claiim chron verify` against the database.

import (
	"errors"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/claiim/claiim-operator/internal/cli"
)

// dbVerifyFlags are `claiim chron verify`'s, passed through.
var dbVerifyFlags = []string{"manager-namespace", "gate-namespace", "keys-from-secrets", "gate-keys", "manager-keys", "offline"}

func newChronVerifyCommand(c *chronOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every stream's hash chain and the signed checkpoints",
		Long: `verify asks the console to verify Chron with the keys and checkpoints it is
configured with; it needs the right to read every org's rows (claiim-auditor).

With --database-url it is 'claiim chron verify': it reads the checkpoints from
the Kubernetes API with the kubeconfig's current context (--kubeconfig is
honored, --context is not); --offline checks the database alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			consoleURL, databaseURL, err := c.target()
			if err != nil {
				return err
			}
			if consoleURL == "" {
				return c.verifyDatabase(cmd.Flags(), databaseURL)
			}
			for _, n := range dbVerifyFlags {
				if cmd.Flags().Changed(n) {
					return errors.New("--" + n + " is for --database-url: the console verifies with the keys and checkpoints it is configured with")
				}
			}
			api, err := c.o.newConsoleClient(consoleURL, c.consoleCA, c.tokenFile)
			if err != nil {
				return err
			}
			defer api.close()
			p, err := c.o.printer()
			if err != nil {
				return err
			}
			r, err := api.verify(cmd.Context())
			if err != nil {
				return err
			}
			if p == nil {
				return verifyReport(c.o.Out, &r)
			}
			if err := c.o.printWith(p, r); err != nil {
				return err
			}
			return verifyResult(nil, &r)
		},
	}
	fs := cmd.Flags()
	fs.String("manager-namespace", "", "the manager's namespace: its stream Leases, key Secret and public keys (default claiim-system)")
	fs.String("gate-namespace", "", "the gate's namespace (default: the manager's)")
	fs.Bool("keys-from-secrets", false, "also read the chain keys from the key Secrets (needs get on them) and recompute every keyed hash")
	fs.String("gate-keys", "", "a directory holding the gate's key Secret as files")
	fs.String("manager-keys", "", "a directory holding the manager's key Secret as files")
	fs.Bool("offline", false, "verify the database alone, without the Kubernetes API")
	return cmd
}

func (c *chronOptions) verifyDatabase(fs *pflag.FlagSet, databaseURL string) error {
	o := c.o
	if o.Flags.Context != nil && *o.Flags.Context != "" {
		return errors.New("chron verify reads the Kubernetes API with the kubeconfig's current context; --context is not supported here")
	}
	if k := o.Flags.KubeConfig; k != nil && *k != "" {
		// internal/cli finds the cluster as controller-runtime does.
		if err := os.Setenv("KUBECONFIG", *k); err != nil {
			return err
		}
	}
	args := []string{"verify", "--database-url=" + databaseURL}
	for _, n := range dbVerifyFlags {
		if f := fs.Lookup(n); f.Changed {
			name := n
			if n == "manager-namespace" {
				name = "namespace"
			}
			args = append(args, "--"+name+"="+f.Value.String())
		}
	}
	return cli.RunChron(args, o.Out)
}
