package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Source keeps the current decide.Snapshot, rebuilt from read-only
// informers whenever a watched resource changes and swapped in atomically:
// a decision always sees one consistent view. It serves the snapshot only
// while probers have proven it fresh (fresh.go).
type Source struct {
	cache     cache.Cache
	live      client.Reader // reads the apiserver directly: the probers' live lists
	kinds     [numKinds]kind
	informers [numKinds]cache.Informer // only Run touches it
	current   atomic.Pointer[served]
	dirty     chan struct{}
	restart   chan int // a kind whose watch the probers found stuck
	rev       atomic.Uint64
	synced    atomic.Bool
	approvals atomic.Bool // the ActionApproval informer has synced
	// rebuildErr is why the last rebuild failed, nil when it did not.
	rebuildErr atomic.Pointer[string]
	probes     probes
	// StaleAfter is how long the snapshot may go without proof that it
	// has caught up with the apiserver before the gate stops deciding
	// (fail-closed). Default 10s. Set it before Run.
	StaleAfter time.Duration

	// compiled memoizes compiled policies by UID and generation; only
	// rebuild() touches it.
	compiled map[types.UID]*decide.CompiledPolicy

	// KeysFrom names the ConfigMap of the manager's public attestation
	// keys (keys.go); set it before Run. No status counts without them.
	KeysFrom types.NamespacedName
	// IgnoreAdmission uses objects whatever their admission stamp
	// (decide.Inputs): only for a cluster without CLAIIM's admission
	// webhooks, in tests of the gate alone. The gate binary never sets it.
	IgnoreAdmission bool
	keys            atomic.Pointer[attest.PublicKeys]
	cfg             *rest.Config
	scheme          *runtime.Scheme
}

// Kinds a snapshot is built from, in the order of Source.kinds.
const (
	kindAIOrg = iota
	kindSkill
	kindPolicy
	kindAgent
	kindGrant
	numKinds
)

var kindNames = [numKinds]string{"AIOrgs", "Skills", "Policies", "Agents", "CrossOrgGrants"}

// kind is one watched resource.
type kind struct {
	obj     client.Object
	newList func() client.ObjectList
	gvk     schema.GroupVersionKind
}

// NewSource makes a Source over the CLAIIM resources. It reads no Secrets.
func NewSource(cfg *rest.Config, scheme *runtime.Scheme) (*Source, error) {
	s := &Source{dirty: make(chan struct{}, 1), restart: make(chan int, numKinds), StaleAfter: 10 * time.Second, cfg: cfg, scheme: scheme}
	s.kinds = [numKinds]kind{
		kindAIOrg:  {obj: &claiimv1.AIOrg{}, newList: func() client.ObjectList { return &claiimv1.AIOrgList{} }},
		kindSkill:  {obj: &claiimv1.Skill{}, newList: func() client.ObjectList { return &claiimv1.SkillList{} }},
		kindPolicy: {obj: &claiimv1.Policy{}, newList: func() client.ObjectList { return &claiimv1.PolicyList{} }},
		kindAgent:  {obj: &claiimv1.Agent{}, newList: func() client.ObjectList { return &claiimv1.AgentList{} }},
		kindGrant:  {obj: &claiimv1.CrossOrgGrant{}, newList: func() client.ObjectList { return &claiimv1.CrossOrgGrantList{} }},
	}
	for k := range s.kinds {
		gvk, err := apiutil.GVKForObject(s.kinds[k].obj, scheme)
		if err != nil {
			return nil, err
		}
		s.kinds[k].gvk = gvk
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the informer cache: %w", err)
	}
	s.cache = c
	if s.live, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	return s, nil
}

// Run starts the informers, builds the first snapshot once they have
// synced, then rebuilds on every change until ctx ends; probers prove the
// snapshot fresh meanwhile.
func (s *Source) Run(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("source")
	s.probes.log = log
	if s.KeysFrom.Name != "" {
		if err := s.watchKeys(ctx, log); err != nil {
			return fmt.Errorf("watching the attestation keys in ConfigMap %s: %w", s.KeysFrom, err)
		}
	}
	for k := range s.kinds {
		if err := s.watch(ctx, k, true); err != nil {
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
	// Only now: the wait above is for every informer of the cache.
	go s.watchApprovals(ctx, log)
	for k := range s.kinds {
		go s.probe(ctx, k)
	}
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case <-s.dirty:
			s.rebuildOrRetry(ctx, log)
		case k := <-s.restart:
			log.Info("restarting a watch that stays behind the apiserver", "kind", kindNames[k], "after", s.StaleAfter)
			if err := s.cache.RemoveInformer(ctx, s.kinds[k].obj); err != nil {
				return err
			}
			if err := s.watch(ctx, k, false); err != nil {
				return err
			}
		}
	}
}

// watch gets kind k's informer, started and syncing if the cache runs,
// and rebuilds on its events.
func (s *Source) watch(ctx context.Context, k int, block bool) error {
	inf, err := s.cache.GetInformer(ctx, s.kinds[k].obj, cache.BlockUntilSynced(block))
	if err != nil {
		return fmt.Errorf("informer for %s: %w", kindNames[k], err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.markDirty() },
		UpdateFunc: func(any, any) { s.markDirty() },
		DeleteFunc: func(any) { s.markDirty() },
	}); err != nil {
		return err
	}
	s.informers[k] = inf
	return nil
}

// rebuildOrRetry keeps the served snapshot when a rebuild fails (a cache
// reloading after its watch restarted) and tries again a probe period
// later; the snapshot goes stale meanwhile, never wrong.
func (s *Source) rebuildOrRetry(ctx context.Context, log logr.Logger) {
	err := s.rebuild(ctx)
	if err == nil {
		s.rebuildErr.Store(nil)
		return
	}
	msg := err.Error()
	if was := s.rebuildErr.Swap(&msg); was == nil || *was != msg {
		log.Info("cannot rebuild the snapshot; will retry", "problem", msg)
	}
	time.AfterFunc(s.probeEvery(), s.markDirty)
}

// markDirty coalesces bursts of events into one rebuild.
func (s *Source) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Source) rebuild(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.probeEvery())
	defer cancel()
	orgs, skills, pols := &claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}
	agents, grants := &claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}
	next := &served{}
	for k, l := range [numKinds]client.ObjectList{kindAIOrg: orgs, kindSkill: skills, kindPolicy: pols, kindAgent: agents, kindGrant: grants} {
		if !s.informers[k].HasSynced() {
			return fmt.Errorf("the cache of %s is still loading after its watch was restarted", kindNames[k])
		}
		if err := s.cache.List(ctx, l); err != nil {
			return fmt.Errorf("listing %s from the cache: %w", kindNames[k], err)
		}
		got, err := listingOf(l)
		if err != nil {
			return err
		}
		next.items[k] = got.items
	}
	compiled := make(map[types.UID]*decide.CompiledPolicy, len(pols.Items))
	next.snap = decide.Build(decide.Inputs{
		Orgs: orgs.Items, Skills: skills.Items, Policies: pols.Items, Agents: agents.Items, Grants: grants.Items,
		Revision:        strconv.FormatUint(s.rev.Add(1), 10),
		Keys:            s.verifier(),
		IgnoreAdmission: s.IgnoreAdmission,
		Compile: func(p *claiimv1.Policy) *decide.CompiledPolicy {
			cp, ok := s.compiled[p.UID]
			if !ok || cp.Version != p.Generation {
				cp, _ = decide.CompilePolicy(p)
			}
			compiled[p.UID] = cp
			return cp
		},
	})
	s.compiled = compiled
	// Inherit before the swap, so the new snapshot is never less proven
	// than the one it replaces; and after, for a proof that landed between.
	prev := s.current.Load()
	next.inherit(prev)
	s.current.Store(next)
	next.inherit(prev)
	return nil
}

// watchApprovals starts the ActionApproval informer. Approvals are looked
// up per request, not built into a snapshot (one approved call must not
// rebuild the index), and they are not a condition of readiness: until
// the informer has synced (the CRD not installed yet after an upgrade,
// the gate's role without the rule yet), every approval reads as unknown,
// so held calls stay APPROVAL_PENDING while everything else is decided.
func (s *Source) watchApprovals(ctx context.Context, log logr.Logger) {
	for {
		inf, err := s.cache.GetInformer(ctx, &claiimv1.ActionApproval{}, cache.BlockUntilSynced(false))
		if err == nil {
			if toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
				s.approvals.Store(true)
			}
			return
		}
		log.Info("cannot watch ActionApprovals yet; calls held for approval stay APPROVAL_PENDING until it can", "problem", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.probeEvery()):
		}
	}
}

// Approval is the ActionApproval namespace/name as the informer holds it;
// nil when it holds none (or cannot say: the retry is then PENDING).
func (s *Source) Approval(ctx context.Context, namespace, name string) *claiimv1.ActionApproval {
	if !s.approvals.Load() { // never block a decision on an informer that is not there
		return nil
	}
	ap := &claiimv1.ActionApproval{}
	if err := s.cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ap); err != nil {
		return nil
	}
	return ap
}

// Snapshot is the current snapshot; nil before the caches have synced and
// once it has gone StaleAfter without proof that it is fresh.
func (s *Source) Snapshot() *decide.Snapshot {
	if !s.synced.Load() {
		return nil
	}
	v := s.current.Load()
	if !s.fresh(time.Now(), v) {
		return nil
	}
	return v.snap
}

// Ready says why decisions can't be made, or nil.
func (s *Source) Ready() error {
	if !s.synced.Load() {
		return errors.New("the gate is starting and has not loaded its resources yet; retry shortly")
	}
	if v := s.current.Load(); !s.fresh(time.Now(), v) {
		return s.staleness(v)
	}
	return nil
}
