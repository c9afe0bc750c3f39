package server

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
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
	current atomic.Pointer[decide.Snapshot]
	dirty   chan struct{}
	rev     atomic.Uint64
	synced  atomic.Bool
}

// NewSource makes a Source over the CLAIIM resources. It reads no Secrets.
func NewSource(cfg *rest.Config, scheme *runtime.Scheme) (*Source, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the informer cache: %w", err)
	}
	return &Source{cache: c, dirty: make(chan struct{}, 1)}, nil
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
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case <-s.dirty:
			if err := s.rebuild(ctx); err != nil {
				return err
			}
		}
	}
}

// markDirty coalesces bursts of events into one rebuild.
func (s *Source) markDirty() {
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
	s.current.Store(decide.Build(decide.Inputs{
		Orgs: orgs.Items, Skills: skills.Items, Policies: pols.Items, Agents: agents.Items, Grants: grants.Items,
		Revision: strconv.FormatUint(s.rev.Add(1), 10),
	}))
	return nil
}

// Snapshot is the current snapshot, nil before the caches have synced.
func (s *Source) Snapshot() *decide.Snapshot { return s.current.Load() }

// Ready says why decisions can't be made yet, or nil.
func (s *Source) Ready() error {
	if !s.synced.Load() {
		return fmt.Errorf("the gate's caches have not synced yet")
	}
	return nil
}
