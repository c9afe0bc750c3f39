package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Who may read which Chron rows is RBAC on the virtual subresource
// aiorgs/chron (verb get), asked as the person (SelfSubjectAccessReview):
//
//   - get aiorgs/chron with no resource name (the claiim-auditor
//     ClusterRole): every row, including rows with no org (PIM, admission,
//     tokens, the control plane's own), which belong to no org's auditors;
//   - get aiorgs/chron for an org's name (resourceNames): that org's rows
//     and its descendants' — a parent org governs its children;
//   - a row belongs to the org of the agent that acted, also when it acted
//     under a CrossOrgGrant: the granting org's auditors see the grant,
//     not the other org's agents' actions.
const chronSubresource = "chron"

// chronAccess is the question asked for org ("" for every org).
func chronAccess(org string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Verb: "get", Group: claiimv1.GroupVersion.Group,
		Resource: "aiorgs", Subresource: chronSubresource, Name: org}
}

// VisibleOrgs is ChronAPI.VisibleOrgs for the request's person.
func (a *Auth) VisibleOrgs(r *http.Request) (orgs []string, all, noOrg bool, err error) {
	s, err := a.Session(r)
	if err != nil {
		return nil, false, false, err
	}
	return a.ChronOrgs(r.Context(), s)
}

// ChronOrgs says whose Chron rows s may read: all of them, or those of
// orgs. None at all is ErrForbidden, with what to ask for.
func (a *Auth) ChronOrgs(ctx context.Context, s *Session) (orgs []string, all, noOrg bool, err error) {
	ok, _, err := s.Allowed(ctx, chronAccess(""))
	if err != nil {
		return nil, false, false, err
	}
	if ok {
		return nil, true, true, nil
	}
	var list claiimv1.AIOrgList
	if err := a.Orgs.List(ctx, &list); err != nil {
		return nil, false, false, fmt.Errorf("listing AIOrgs: %w", err)
	}
	parent := make(map[string]claiimv1.OrgName, len(list.Items))
	for _, o := range list.Items {
		parent[o.Name] = o.Spec.Parent
	}
	granted := make(map[string]bool, len(parent))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for name := range parent {
		g.Go(func() error {
			ok, _, err := s.Allowed(gctx, chronAccess(name))
			mu.Lock()
			granted[name] = ok
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, false, err
	}
	for name, p := range parent {
		path, err := claiimv1.OrgPath(name, p, func(n string) (claiimv1.OrgName, bool, error) {
			pp, ok := parent[n]
			return pp, ok, nil
		})
		if err != nil {
			path = []string{name} // a broken tree grants nothing through it
		}
		for _, o := range path {
			if granted[o] {
				orgs = append(orgs, name)
				break
			}
		}
	}
	if len(orgs) == 0 {
		return nil, false, false, fmt.Errorf("%w: %s may read no AIOrg's Chron rows; ask for the claiim-auditor ClusterRole (every org) "+
			"or a role allowing get on aiorgs/chron for the orgs you audit (docs/console.md)", ErrForbidden, s.Name())
	}
	sort.Strings(orgs)
	return orgs, false, false, nil
}
