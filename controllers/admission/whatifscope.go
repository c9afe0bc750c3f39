package admission

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/whatif"
)

// readableScope narrows the orgs a what-if replays (scope; nil for every
// org) to those whose Chron rows the person making the change may read,
// by the same RBAC as the console (docs/console.md): get aiorgs/chron
// with no name reads every row; with an org's name, that org's and its
// descendants'. The warnings and the PIM session's status.whatIf name
// agents and actions of the rows replayed, so a change must not show its
// author decisions they could not read in Chron. hidden are the orgs in
// reach left out, sorted.
func (h *handlers) readableScope(ctx context.Context, req admission.Request, w whatif.World, scope []string) (orgs, hidden []string, err error) {
	all, err := h.canReadChron(ctx, req, "")
	if err != nil || all {
		return scope, nil, err
	}
	parent := make(map[string]claiimv1.OrgName, len(w.Orgs))
	for i := range w.Orgs {
		parent[w.Orgs[i].Name] = w.Orgs[i].Spec.Parent
	}
	if scope == nil { // every org: rows with no org are for readers of every org only
		for name := range parent {
			scope = append(scope, name)
		}
	}
	paths := make(map[string][]string, len(scope))
	granted := map[string]bool{}
	for _, org := range scope {
		path, err := claiimv1.OrgPath(org, parent[org], func(n string) (claiimv1.OrgName, bool, error) {
			p, ok := parent[n]
			return p, ok, nil
		})
		if err != nil {
			path = []string{org} // a broken tree grants nothing through it
		}
		paths[org] = path
		for _, o := range path {
			granted[o] = false
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for name := range granted {
		g.Go(func() error {
			ok, err := h.canReadChron(gctx, req, name)
			mu.Lock()
			granted[name] = ok
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	orgs = []string{} // non-nil: no readable org replays nothing
	for _, org := range scope {
		readable := false
		for _, o := range paths[org] {
			readable = readable || granted[o]
		}
		if readable {
			orgs = append(orgs, org)
		} else {
			hidden = append(hidden, org)
		}
	}
	sort.Strings(hidden)
	return orgs, hidden, nil
}

// canReadChron asks whether the request's user may read org's Chron rows
// ("" for every org's), as the console asks.
func (h *handlers) canReadChron(ctx context.Context, req admission.Request, org string) (bool, error) {
	return h.review(ctx, req, authorizationv1.ResourceAttributes{Resource: "aiorgs", Subresource: "chron", Verb: "get", Name: org})
}

// hiddenWarning says which orgs in reach were not replayed, and why.
func hiddenWarning(user string, hidden []string) string {
	names := hidden[:min(len(hidden), 3)]
	more := ""
	if len(hidden) > len(names) {
		more = fmt.Sprintf(" and %d more", len(hidden)-len(names))
	}
	return fmt.Sprintf("what-if: the decisions of %d org(s) this change reaches (%s%s) were not replayed: %s may not read their Chron rows. "+
		"Ask for get on aiorgs/chron for those orgs (or a parent), or the claiim-auditor ClusterRole, to see them here; "+
		"this change applies to them all the same", len(hidden), strings.Join(names, ", "), more, user)
}
