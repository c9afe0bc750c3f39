package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/decide"
)

// Freshness is proven, not assumed: a watch can fail without a word
// (client-go retries refused connections and 429s inside the watch, and a
// watch can stay open and go silent). So, per kind, a prober takes a live,
// consistent LIST and waits for the served snapshot to show at least what
// it listed; only then is the snapshot known fresh as of the LIST's start.
// Past StaleAfter without such proof the gate answers NOT_READY.

// version is one state of one object.
type version struct {
	uid types.UID
	rv  string
}

// listing is the objects of one kind by namespace/name, and the
// resourceVersion of the list that read them.
type listing struct {
	rv    string
	items map[string]version
}

func listingOf(l client.ObjectList) (listing, error) {
	out := listing{rv: l.GetResourceVersion(), items: map[string]version{}}
	err := meta.EachListItem(l, func(o runtime.Object) error {
		m, err := meta.Accessor(o)
		if err != nil {
			return err
		}
		out.items[key(m.GetNamespace(), m.GetName())] = version{uid: m.GetUID(), rv: m.GetResourceVersion()}
		return nil
	})
	return out, err
}

func key(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// behind says how have (what a snapshot was built from, or the cache) is
// behind live, a consistent LIST, or "" when it has caught up: every listed
// object is there at the listed version or newer, and nothing is there
// that the list no longer has unless it changed after the list was taken.
// An object deleted after the list cannot be told from one the watch
// missed; the next probe's list settles it.
func behind(live listing, have map[string]version) string {
	for k, l := range live.items {
		h, ok := have[k]
		switch {
		case !ok:
			return k + " is missing"
		case h.uid == l.uid && !atLeast(h.rv, l.rv):
			return fmt.Sprintf("%s is at resourceVersion %s, the apiserver has %s", k, h.rv, l.rv)
		case h.uid != l.uid && !newer(h.rv, live.rv):
			return k + " was deleted and created again"
		}
	}
	for k, h := range have {
		if _, ok := live.items[k]; !ok && !newer(h.rv, live.rv) {
			return k + " was deleted"
		}
	}
	return ""
}

// atLeast compares resourceVersions as numbers (etcd's revisions); the API
// calls them opaque, so anything else only matches itself.
func atLeast(have, want string) bool {
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	if err1 != nil || err2 != nil {
		return have == want
	}
	return h >= w
}

// newer says an object changed after a list at listRV; unknown is no.
func newer(rv, listRV string) bool {
	r, err1 := strconv.ParseUint(rv, 10, 64)
	l, err2 := strconv.ParseUint(listRV, 10, 64)
	return err1 == nil && err2 == nil && r > l
}

// served is a snapshot with what it was built from and how fresh it is
// known to be. A later snapshot is built from a later cache, so it is at
// least as fresh as an earlier one and inherits its proof.
type served struct {
	snap  *decide.Snapshot
	items [numKinds]map[string]version
	// verified is per kind the start of the latest live LIST this
	// snapshot has caught up with (unix nanos; 0: none yet).
	verified [numKinds]atomic.Int64
}

func (v *served) confirm(k int, at int64) {
	for {
		old := v.verified[k].Load()
		if old >= at || v.verified[k].CompareAndSwap(old, at) {
			return
		}
	}
}

func (v *served) inherit(prev *served) {
	if prev == nil {
		return
	}
	for k := range numKinds {
		v.confirm(k, prev.verified[k].Load())
	}
}

// oldest is the kind proven fresh longest ago, and when.
func (v *served) oldest() (kind int, at int64) {
	kind, at = 0, v.verified[0].Load()
	for k := 1; k < numKinds; k++ {
		if t := v.verified[k].Load(); t < at {
			kind, at = k, t
		}
	}
	return kind, at
}

// probes is what the probers learned: per kind, why it could not be
// confirmed last time ("" when it was), and since when its watch has been
// behind a successful live list.
type probes struct {
	mu          sync.Mutex
	log         logr.Logger
	problem     [numKinds]string
	behindSince [numKinds]time.Time
	restarted   [numKinds]time.Time
}

func (p *probes) set(k int, problem string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch was := p.problem[k]; {
	case was == "" && problem != "":
		p.log.Info("cannot confirm the gate's view of the apiserver", "kind", kindNames[k], "problem", problem)
	case was != "" && problem == "":
		p.log.Info("the gate's view of the apiserver is confirmed again", "kind", kindNames[k])
	}
	p.problem[k] = problem
	if problem == "" {
		p.behindSince[k] = time.Time{}
	}
}

func (p *probes) get(k int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.problem[k]
}

// watchBehind records that k's watch lags a live list and says whether to
// restart it: once it has lagged for after, and at most once per after.
// A restarted watch lists afresh, which heals a watch that stays open but
// delivers nothing.
func (p *probes) watchBehind(k int, now time.Time, after time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.behindSince[k].IsZero() {
		p.behindSince[k] = now
	}
	if now.Sub(p.behindSince[k]) < after || now.Sub(p.restarted[k]) < after {
		return false
	}
	p.restarted[k] = now
	return true
}

// probeEvery is the probe period; each probe's calls time out within it.
func (s *Source) probeEvery() time.Duration {
	return max(s.StaleAfter/4, 250*time.Millisecond)
}

func (s *Source) probe(ctx context.Context, k int) {
	every := s.probeEvery()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.probeOnce(ctx, k, every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Source) probeOnce(parent context.Context, k int, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	start := time.Now().UnixNano()
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(s.kinds[k].gvk.GroupVersion().WithKind(s.kinds[k].gvk.Kind + "List"))
	if err := s.live.List(ctx, l); err != nil { // no resourceVersion: a consistent read
		s.probes.set(k, "listing them from the apiserver failed: "+err.Error())
		return
	}
	live, err := listingOf(l)
	if err != nil {
		s.probes.set(k, "reading the live list failed: "+err.Error())
		return
	}
	// The watch brings what the list saw moments later and each event
	// rebuilds the snapshot: wait, within the timeout, for one that has it.
	for {
		cur := s.current.Load()
		lag := behind(live, cur.items[k])
		if lag == "" {
			s.confirm(cur, k, start)
			s.probes.set(k, "")
			return
		}
		select {
		case <-ctx.Done():
			if parent.Err() == nil {
				s.lagging(parent, k, live, lag)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// confirm marks cur, and any snapshot served since (built from a later
// cache), fresh for kind k as of at.
func (s *Source) confirm(cur *served, k int, at int64) {
	for {
		cur.confirm(k, at)
		next := s.current.Load()
		if next == cur {
			return
		}
		cur = next
	}
}

// lagging tells a watch that is behind (restarted after a while) from a
// snapshot that could not be rebuilt.
func (s *Source) lagging(ctx context.Context, k int, live listing, lag string) {
	ctx, cancel := context.WithTimeout(ctx, s.probeEvery())
	defer cancel()
	list := s.kinds[k].newList()
	err := s.cache.List(ctx, list, client.UnsafeDisableDeepCopy)
	cached, lerr := listingOf(list)
	if err == nil && lerr == nil && behind(live, cached.items) == "" {
		why := "the gate's cache has them but its snapshot has not been rebuilt yet"
		if e := s.rebuildErr.Load(); e != nil {
			why += "; the last rebuild failed: " + *e
		}
		s.probes.set(k, why)
		return
	}
	s.probes.set(k, "the gate's watch of them is behind the apiserver ("+lag+")")
	if s.probes.watchBehind(k, time.Now(), s.StaleAfter) {
		select {
		case s.restart <- k:
		default:
		}
	}
}

// fresh says whether v may still be served at now.
func (s *Source) fresh(now time.Time, v *served) bool {
	_, at := v.oldest()
	return at != 0 && now.Sub(time.Unix(0, at)) <= s.StaleAfter
}

// staleness explains why v may not be served, in words for whoever runs
// the gate.
func (s *Source) staleness(v *served) error {
	k, at := v.oldest()
	problem := s.probes.get(k)
	if problem == "" {
		problem = "no live list of them has been confirmed yet"
	}
	since := fmt.Sprintf("for more than %s", s.StaleAfter)
	if at == 0 {
		since = "since it loaded its resources"
	}
	return fmt.Errorf("the gate could not confirm its view of the apiserver %s (%s: %s), so it denies every request; "+
		"check that the apiserver is reachable from the gate and that the gate's RBAC lets it list and watch %s",
		since, kindNames[k], problem, strings.ToLower(kindNames[k])+".claiim.io")
}

// notReady is what a NOT_READY answer tells the agent: the source's reason.
func notReady(snaps Snapshots) string {
	if err := snaps.Ready(); err != nil {
		return err.Error()
	}
	return "the gate is between snapshots; retry shortly" // it became ready meanwhile
}
