package console

import (
	"context"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/pimview"
)

type dashboardData struct {
	Counts []kindCount
	Agents agentCounts
	PIM    pimState
	New    []action
}

// kindCount is how many objects of a kind the person can see.
type kindCount struct {
	Label, Href string
	N           int
	listing
}

type agentCounts struct {
	listing
	Total  int
	Phases []phaseCount
}

type phaseCount struct {
	Phase string
	N     int
}

// agentPhases is the order the dashboard counts agents in.
var agentPhases = []claiimv1.AgentPhase{claiimv1.AgentActive, claiimv1.AgentInactive, claiimv1.AgentPending,
	claiimv1.AgentSuspended, claiimv1.AgentDecommissioned}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s *Session) {
	ctx := r.Context()
	d := dashboardData{PIM: myPIM(ctx, s, c.now())}
	count := func(label, href string, list client.ObjectList, plural string) {
		l := listAs(ctx, s, list, plural)
		n := 0
		if l.OK() {
			n = meta.LenList(list)
		}
		d.Counts = append(d.Counts, kindCount{Label: label, Href: href, N: n, listing: l})
	}
	count("AIOrgs", "/orgs", &claiimv1.AIOrgList{}, "AIOrgs")
	count("Skills", "/skills", &claiimv1.SkillList{}, "skills")
	count("Policies", "/policies", &claiimv1.PolicyList{}, "policies")
	count("CrossOrgGrants", "/grants", &claiimv1.CrossOrgGrantList{}, "cross-org grants")

	var agents claiimv1.AgentList
	d.Agents.listing = listAs(ctx, s, &agents, "agents")
	byPhase := map[claiimv1.AgentPhase]int{}
	for i := range agents.Items {
		byPhase[agents.Items[i].Status.Phase]++
	}
	d.Agents.Total = len(agents.Items)
	for _, p := range agentPhases {
		d.Agents.Phases = append(d.Agents.Phases, phaseCount{Phase: string(p), N: byPhase[p]})
	}
	if n := byPhase[""]; n > 0 {
		d.Agents.Phases = append(d.Agents.Phases, phaseCount{Phase: "not reported yet", N: n})
	}

	d.New = []action{
		{Href: "/orgs/new", Label: "New AIOrg", permit: can(ctx, s, "create", "aiorgs", "")},
		{Href: "/skills/new", Label: "New skill", permit: can(ctx, s, "create", "skills", "")},
		{Href: "/policies/new", Label: "New policy", permit: can(ctx, s, "create", "policies", "")},
		{Href: "/agents/new", Label: "New agent", permit: can(ctx, s, "create", "agents", defaultAgentNamespace)},
	}
	c.render(w, http.StatusOK, "dashboard", newView(r, s, "Dashboard", "dashboard", d))
}

// pimState is the person's own elevation: an active session, or the
// requests of theirs still waiting for a second person.
type pimState struct {
	listing
	Active  *pimActive
	Pending []string
}

type pimActive struct {
	Name, ApprovedBy string
	ExpiresAt        time.Time
}

// myPIM reads the person's PIM requests as they see them at now; whether
// one elevates them is the API's rule (PIMRequest.Elevates), as admission
// applies it, and whether one still waits is pimview's (it lapses at the
// manager's deadline).
func myPIM(ctx context.Context, s *Session, now time.Time) pimState {
	var list claiimv1.PIMRequestList
	st := pimState{listing: listAs(ctx, s, &list, "PIM requests")}
	for i := range list.Items {
		p := &list.Items[i]
		v := pimview.Of(p, now)
		sess := v.Session
		switch {
		case p.Elevates(s.Name(), now):
			if st.Active == nil || sess.ExpiresAt.After(st.Active.ExpiresAt) {
				st.Active = &pimActive{Name: p.Name, ApprovedBy: string(sess.ApprovedBy), ExpiresAt: sess.ExpiresAt}
			}
		case v.Phase == claiimv1.PIMPending && string(sess.Subject) == s.Name() && len(st.Pending) < 8:
			st.Pending = append(st.Pending, p.Name)
		}
	}
	return st
}

// Summary is one sentence for a form's hint.
func (p pimState) Summary() string {
	switch {
	case p.Active != nil:
		return ""
	case !p.OK():
		return "The console could not tell whether you have an active PIM session (" + p.Note + p.Err + "); without one the apiserver refuses changes."
	case len(p.Pending) > 0:
		return "Your PIM request " + p.Pending[0] + " is waiting for another person's approval; until then the apiserver refuses changes."
	}
	return "You have no active PIM session: the apiserver will refuse this until another person approves one (request it at /pim)."
}
