package whatif

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Defaults of a what-if's source: the last day of decisions, at most
// this many of them (the newest).
const (
	DefaultSince = 24 * time.Hour
	DefaultLimit = 10000
	MaxLimit     = 100000
)

// Window names a window reaching back d: "the last 24h".
func Window(d time.Duration) string {
	s := strings.TrimSuffix(d.String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return "the last " + s
}

// ListWorld reads the current objects.
func ListWorld(ctx context.Context, c client.Reader) (World, error) {
	var w World
	orgs, skills, pols := &claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}
	agents, grants := &claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}
	for _, l := range []client.ObjectList{orgs, skills, pols, agents, grants} {
		if err := c.List(ctx, l); err != nil {
			return w, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	w.Orgs, w.Skills, w.Policies, w.Agents, w.Grants = orgs.Items, skills.Items, pols.Items, agents.Items, grants.Items
	return w, nil
}

// Source says which Chron rows a what-if replays.
type Source struct {
	Since time.Time // inclusive
	Limit int       // the newest this many; DefaultLimit when 0
	// Orgs restricts rows to these agents' orgs; nil reads every org.
	Orgs []string
}

// ReadRequests reads the decision rows of src, newest first. When ctx
// ends first it returns what it has read, with more set: a what-if under
// a deadline replays a sample rather than nothing.
func ReadRequests(ctx context.Context, pool *pgxpool.Pool, src Source) (reqs []Request, more bool, err error) {
	limit := src.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if src.Orgs != nil && len(src.Orgs) == 0 {
		return nil, false, nil // no agent the change can touch
	}
	f := chron.Filter{Kind: string(chron.KindDecision), Since: src.Since, Orgs: src.Orgs}
	for len(reqs) < limit {
		f.Limit = min(limit-len(reqs), chron.MaxLimit)
		p, err := chron.ListPage(ctx, pool, f)
		if err != nil {
			if ctx.Err() != nil {
				return reqs, true, nil // out of time: a sample
			}
			return reqs, false, err
		}
		for i := range p.Rows {
			reqs = append(reqs, FromRow(&p.Rows[i]))
		}
		if p.Next == "" {
			return reqs, false, nil
		}
		f.After = p.Next
	}
	return reqs, true, nil
}

// FromRow is the request a decision row records.
func FromRow(r *chron.Row) Request {
	return Request{ID: r.ID, Time: r.Time, AgentNamespace: r.AgentNamespace, AgentName: r.AgentName, AgentUID: r.AgentUID,
		Action: r.Action, Context: r.Context, SkillVersionID: r.SkillVersionID, Outcome: r.Outcome, Reason: r.Reason}
}

// Scope is the orgs whose agents' requests the change can answer
// differently (a decision row is of its agent's org); nil when it can
// touch any org's (an unscoped policy, an org or a grant).
func Scope(w World, c Change) []string {
	parent := make(map[string]string, len(w.Orgs))
	for i := range w.Orgs {
		parent[w.Orgs[i].Name] = string(w.Orgs[i].Spec.Parent)
	}
	// under reports whether org is o or one of its descendants.
	under := func(org, o string) bool {
		for n := 0; org != "" && n <= claiimv1.MaxOrgDepth; n++ {
			if org == o {
				return true
			}
			org = parent[org]
		}
		return false
	}
	skillOrg := make(map[string]string, len(w.Skills))
	for i := range w.Skills {
		skillOrg[w.Skills[i].Name] = string(w.Skills[i].Spec.Org)
	}
	orgs := []string{}
	add := func(match func(a *claiimv1.Agent) bool) {
		for i := range w.Agents {
			if a := &w.Agents[i]; match(a) {
				orgs = append(orgs, string(a.Spec.Org))
			}
		}
	}
	for _, e := range c {
		switch o := e.Object.(type) {
		case *claiimv1.Policy:
			var scopes []string // the policy's orgs before and after
			if !e.Delete {
				scopes = append(scopes, string(o.Spec.Org))
			}
			if i := index(w.Policies, o); i >= 0 {
				scopes = append(scopes, string(w.Policies[i].Spec.Org))
			}
			for _, s := range scopes {
				if s == "" {
					return nil
				}
				// A policy of an org applies to its agents and, for a Deny,
				// to agents of other orgs using its skills.
				add(func(a *claiimv1.Agent) bool {
					return under(string(a.Spec.Org), s) || under(skillOrg[a.Spec.SkillRef.Name], s)
				})
			}
		case *claiimv1.Skill:
			add(func(a *claiimv1.Agent) bool { return a.Spec.SkillRef.Name == o.Name })
		case *claiimv1.Agent:
			if !e.Delete {
				orgs = append(orgs, string(o.Spec.Org))
			}
			if i := index(w.Agents, o); i >= 0 {
				orgs = append(orgs, string(w.Agents[i].Spec.Org))
			}
		default:
			return nil
		}
	}
	slices.Sort(orgs)
	return slices.Compact(orgs)
}
