package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
)

// managerChron sets up the manager's Chron: both components' keys (made
// when missing, public halves published), a stream of the manager's set,
// its writer, the holder's renewals, a readiness check, and the
// scheduled verify.
func managerChron(ctx context.Context, mgr ctrl.Manager, cfg *rest.Config, pool *pgxpool.Pool, cs *chronStreams,
	gateNamespace string, verifyEvery time.Duration) (*chron.Writer, *chronlease.Holder, error) {
	log := ctrl.Log.WithName("chron")
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, nil, err
	}
	ns := podNamespace()
	keys, err := chronlease.EnsureKeySet(ctx, direct, ns, chronlease.ManagerKeysSecret, chron.ScopeManager, true)
	if err != nil {
		return nil, nil, err
	}
	gateKeys, err := chronlease.EnsureKeySet(ctx, direct, gateNamespace, chronlease.GateKeysSecret, chron.ScopeGate, false)
	if err != nil {
		return nil, nil, err
	}
	if err := chronlease.PublishPublic(ctx, direct, ns, keys, gateKeys); err != nil {
		return nil, nil, err
	}
	m := chronlease.NewMetrics(metrics.Registry)
	holder, opts, err := cs.hold(ctx, direct, chron.ScopeManager, defaultReplica(), keys, m, log)
	if err != nil {
		return nil, nil, err
	}
	rec := mgr.GetEventRecorder("claiim-chron")
	conflict := opts.OnConflict
	opts.OnConflict = func(id string) {
		conflict(id)
		if l := holder.Lease(); l != nil {
			rec.Eventf(l, nil, corev1.EventTypeWarning, "ChronConflict", "Write",
				"a record's id %s was already in Chron with other content: refused and recorded as chron.conflict; see docs/security.md", id)
		}
	}
	w, err := chron.NewWriter(ctx, pool, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the Chron writer: %w", err)
	}
	holder.Head = w.Head
	leaseNamespaces := []string{*cs.namespace}
	if !slices.Contains(leaseNamespaces, gateNamespace) {
		leaseNamespaces = append(leaseNamespaces, gateNamespace)
	}
	verifier := &chronlease.Verifier{Pool: pool, Interval: verifyEvery, Log: w, Recorder: rec, Metrics: m, Logger: log,
		Regarding: func() runtime.Object { return holder.Lease() },
		Source: chronlease.Source{Reader: direct, LeaseNamespaces: leaseNamespaces, PublicNamespace: ns,
			KeySecrets: []chronlease.SecretRef{{Namespace: ns, Name: chronlease.ManagerKeysSecret, Scope: chron.ScopeManager},
				{Namespace: gateNamespace, Name: chronlease.GateKeysSecret, Scope: chron.ScopeGate}}}}
	err = errors.Join(mgr.Add(everyReplica(holder.Run)), mgr.Add(verifier),
		mgr.AddReadyzCheck("chron-stream", func(*http.Request) error { return holder.Ready() }))
	return w, holder, err
}

// everyReplica is a runnable every replica runs, leader or not.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (f everyReplica) NeedLeaderElection() bool        { return false }
