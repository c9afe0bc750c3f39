package cli

// `claiim chron verify`: the rows, the keyed chain, and the signed
// checkpoints published in the Kubernetes API (gate/chronlease).

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
)

type verifyOpts struct {
	namespace, gateNamespace   *string
	fromSecrets, offline       *bool
	gateKeysDir, managerKeyDir *string
}

func verifyFlags(fs *flag.FlagSet) *verifyOpts {
	return &verifyOpts{
		namespace:     fs.String("namespace", podNamespace(), "the manager's namespace: its stream Leases, key Secret and the public keys (ConfigMap "+chronlease.PublicConfigMap+")"),
		gateNamespace: fs.String("gate-namespace", "", "the gate's namespace: its stream Leases and key Secret (default --namespace)"),
		fromSecrets:   fs.Bool("keys-from-secrets", false, "also read the chain keys from the key Secrets (needs get on them) and recompute every keyed hash"),
		gateKeysDir:   fs.String("gate-keys", "", "a directory holding the gate's key Secret as files (kubectl get secret … and one file per key)"),
		managerKeyDir: fs.String("manager-keys", "", "a directory holding the manager's key Secret as files"),
		offline:       fs.Bool("offline", false, "verify the database alone, without the Kubernetes API: cut tails and rechained streams go unseen"),
	}
}

// options reads what verify (and export) check against: the checkpoints
// and public keys in the Kubernetes API unless offline, and the chain keys
// from the Secrets or key directories.
func (vf *verifyOpts) options(ctx context.Context) (chron.VerifyOptions, []chron.Problem, error) {
	var opts chron.VerifyOptions
	var problems []chron.Problem
	if !*vf.offline {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return opts, nil, fmt.Errorf("no Kubernetes configuration, so no checkpoints to verify against: %w "+
				"(set KUBECONFIG, or pass --offline to check the database alone)", err)
		}
		c, err := client.New(cfg, client.Options{Scheme: newScheme()})
		if err != nil {
			return opts, nil, err
		}
		gateNS := *vf.gateNamespace
		if gateNS == "" {
			gateNS = *vf.namespace
		}
		src := chronlease.Source{Reader: c, LeaseNamespaces: []string{*vf.namespace}, PublicNamespace: *vf.namespace}
		if gateNS != *vf.namespace {
			src.LeaseNamespaces = append(src.LeaseNamespaces, gateNS)
		}
		if *vf.fromSecrets {
			src.KeySecrets = []chronlease.SecretRef{
				{Namespace: *vf.namespace, Name: chronlease.ManagerKeysSecret, Scope: chron.ScopeManager},
				{Namespace: gateNS, Name: chronlease.GateKeysSecret, Scope: chron.ScopeGate}}
		}
		if opts, problems, err = src.Options(ctx); err != nil {
			return opts, nil, err
		}
	}
	for scope, dir := range map[string]string{chron.ScopeGate: *vf.gateKeysDir, chron.ScopeManager: *vf.managerKeyDir} {
		if dir == "" {
			continue
		}
		k, err := chronlease.ReadKeyDir(dir, scope)
		if err != nil {
			return opts, nil, err
		}
		if opts.Keys == nil {
			opts.Keys = chron.Keyring{}
		}
		opts.Keys.Add(k)
	}
	return opts, problems, nil
}

func runVerify(ctx context.Context, pool *pgxpool.Pool, vf *verifyOpts, out io.Writer) error {
	opts, problems, err := vf.options(ctx)
	if err != nil {
		return err
	}
	rep, err := chron.VerifyWith(ctx, pool, opts)
	if err != nil {
		return err
	}
	blamed := map[string]bool{}
	for _, p := range problems {
		blamed[p.Stream] = true
	}
	for _, p := range rep.Problems {
		if !blamed[p.Stream] {
			problems = append(problems, p)
		}
	}
	fmt.Fprintf(out, "checked %d rows in %d streams against %d signed checkpoints\n", rep.Rows, rep.Streams, rep.Checkpoints)
	if rep.Unkeyed > 0 {
		fmt.Fprintf(out, "note: %d keyed rows were checked by their links only (no chain key given: --keys-from-secrets or --gate-keys/--manager-keys)\n", rep.Unkeyed)
	}
	if rep.Pruned > 0 {
		fmt.Fprintf(out, "note: %d streams start after a prune record: their earlier rows were pruned after export (claiim chron verify --file checks the exports)\n", rep.Pruned)
	}
	if rep.PrunesUnsigned > 0 {
		fmt.Fprintf(out, "note: offline: the signatures of %d prune records were not checked, so pruning cannot be told from truncation there\n", rep.PrunesUnsigned)
	}
	if *vf.offline {
		fmt.Fprintln(out, "note: offline: rows cut from a stream's tail, and streams rewritten whole, cannot be seen without the checkpoints")
	}
	for _, p := range problems {
		fmt.Fprintf(out, "TAMPERED stream %s seq %d (id %s): %s\n", p.Stream, p.Seq, p.ID, p.What)
	}
	if len(problems) > 0 {
		return fmt.Errorf("Chron failed verification: %d problem(s); see docs/security.md, Verifying Chron", len(problems))
	}
	fmt.Fprintln(out, "OK: every stream's hash chain is intact and reaches its signed checkpoint")
	return nil
}
