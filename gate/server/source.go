package server

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Source keeps the current decide.Snapshot, rebuilt from read-only
// informers whenever a watched resource changes and swapped in atomically:
// a decision always sees one consistent view.
type Source struct {
	cache   cache.Cache
	live    client.Reader // reads the apiserver directly, to tell when watches can work again
	current atomic.Pointer[decide.Snapshot]
	dirty   chan struct{}
	rev     atomic.Uint64
	synced  atomic.Bool
	// failingSince is when watches started failing (unix nanos, 0 when
	// healthy): past StaleAfter the snapshot may be hiding a suspension.
	failingSince atomic.Int64
	// StaleAfter is how long watches may fail before the gate stops
	// deciding (fail-closed). Default 10s.
	StaleAfter time.Duration

	// compiled memoizes compiled policies by UID and generation; only
	// rebuild() touches it.
	compiled map[types.UID]*decide.CompiledPolicy
}

// NewSource makes a Source over the CLAIIM resources. It reads no Secrets.
func NewSource(cfg *rest.Config, scheme *runtime.Scheme) (*Source, error) {
	s := &Source{dirty: make(chan struct{}, 1), StaleAfter: 10 * time.Second}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme,
		DefaultWatchErrorHandler: func(ctx context.Context, r *toolscache.Reflector, err error) {
			s.failingSince.CompareAndSwap(0, time.Now().UnixNano())
			toolscache.DefaultWatchErrorHandler(ctx, r, err)
		}})
	if err != nil {
		return nil, fmt.Errorf("creating the informer cache: %w", err)
	}
	s.cache = c
	if s.live, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	return s, nil
}

// watched are the kinds a snapshot is built from.
func watched() []client.Object {
	return []client.Object{&claiimv1.AIOrg{}, &claiimv1.Skill{}, &claiimv1.Policy{}, &claiimv1.Agent{}, &claiimv1.CrossOrgGrant{}}
}

// Run starts the informers, builds the first snapshot once they have
// synced, then rebuilds on every change until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	mark := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.markDirty() },
		UpdateFunc: func(any, any) { s.markDirty() },
		DeleteFunc: func(any) { s.markDirty() },
	}
	for _, o := range watched() {
		inf, err := s.cache.GetInformer(ctx, o)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", o, err)
		}
		if _, err := inf.AddEventHandler(mark); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.cache.Start(ctx) }()
	if !s.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("informer caches did not sync")
	}
	if err := s.rebuild(ctx); err != nil {
		return err
	}
	s.synced.Store(true)
	probe := time.NewTicker(2 * time.Second)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case <-probe.C:
			// Watches that failed retry on their own; once the apiserver
			// answers every kind again, the view is current.
			if s.failingSince.Load() != 0 && s.canList(ctx) {
				s.failingSince.Store(0)
			}
		case <-s.dirty:
			if err := s.rebuild(ctx); err != nil {
				return err
			}
		}
	}
}

func (s *Source) canList(ctx context.Context) bool {
	for _, l := range []client.ObjectList{&claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}, &claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}} {
		if s.live.List(ctx, l, client.Limit(1)) != nil {
			return false
		}
	}
	return true
}

// markDirty coalesces bursts of events into one rebuild. An event means a
// watch works again.
func (s *Source) markDirty() {
	s.failingSince.Store(0)
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Source) rebuild(ctx context.Context) error {
	orgs, skills, pols := &claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}
	agents, grants := &claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}
	for _, l := range []client.ObjectList{orgs, skills, pols, agents, grants} {
		if err := s.cache.List(ctx, l); err != nil {
			return fmt.Errorf("listing %T from the cache: %w", l, err)
		}
	}
	next := make(map[types.UID]*decide.CompiledPolicy, len(pols.Items))
	s.current.Store(decide.Build(decide.Inputs{
		Orgs: orgs.Items, Skills: skills.Items, Policies: pols.Items, Agents: agents.Items, Grants: grants.Items,
		Revision: strconv.FormatUint(s.rev.Add(1), 10),
		Compile: func(p *claiimv1.Policy) *decide.CompiledPolicy {
			cp, ok := s.compiled[p.UID]
			if !ok || cp.Version != p.Generation {
				cp, _ = decide.CompilePolicy(p)
			}
			next[p.UID] = cp
			return cp
		},
	}))
	s.compiled = next
	return nil
}

// Snapshot is the current snapshot; nil before the caches have synced and
// while watches have been failing for longer than StaleAfter.
func (s *Source) Snapshot() *decide.Snapshot {
	if s.Ready() != nil {
		return nil
	}
	return s.current.Load()
}

// Ready says why decisions can't be made, or nil.
func (s *Source) Ready() error {
	if !s.synced.Load() {
		return fmt.Errorf("the gate's caches have not synced yet")
	}
	if t := s.failingSince.Load(); t != 0 && time.Since(time.Unix(0, t)) > s.StaleAfter {
		return fmt.Errorf("the gate has not been able to watch its resources for more than %s; its view may be stale", s.StaleAfter)
	}
	return nil
}
