package console

import (
	"net/http"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func (c *Console) registerOrgs(mux *http.ServeMux) {
	mux.HandleFunc("GET /orgs", c.page(c.orgs))
	mux.HandleFunc("GET /orgs/{name}", c.page(c.org))
}

// orgNode is one AIOrg in the tree.
type orgNode struct {
	Name, DisplayName, Path string
	// Missing is the parent an orphan names that does not exist.
	Missing  string
	Ready    ready
	Children []*orgNode
}

// orgTree arranges orgs by parent, names sorted. Roots are the orgs with
// no parent or whose parent is missing (an orphan, marked); orgs no root
// reaches (a cycle) or that hang too deep come back as stray.
func orgTree(orgs []claiimv1.AIOrg) (roots, stray []*orgNode) {
	nodes := make(map[string]*orgNode, len(orgs))
	for i := range orgs {
		o := &orgs[i]
		nodes[o.Name] = &orgNode{Name: o.Name, DisplayName: o.Spec.DisplayName, Path: o.Status.Path, Ready: readyOf(o.Status.Conditions)}
	}
	children := map[string][]*orgNode{}
	for i := range orgs {
		o := &orgs[i]
		n, parent := nodes[o.Name], string(o.Spec.Parent)
		switch {
		case parent == "":
			roots = append(roots, n)
		case nodes[parent] == nil:
			n.Missing = parent
			roots = append(roots, n)
		default:
			children[parent] = append(children[parent], n)
		}
	}
	byName := func(a, b *orgNode) int { return strings.Compare(a.Name, b.Name) }
	placed := map[string]bool{}
	var place func(ns []*orgNode, depth int) []*orgNode
	place = func(ns []*orgNode, depth int) []*orgNode {
		slices.SortFunc(ns, byName)
		var out []*orgNode
		for _, n := range ns {
			if placed[n.Name] || depth > claiimv1.MaxOrgDepth {
				continue
			}
			placed[n.Name] = true
			n.Children = place(children[n.Name], depth+1)
			out = append(out, n)
		}
		return out
	}
	roots = place(roots, 0)
	for _, n := range nodes {
		if !placed[n.Name] {
			stray = append(stray, n)
		}
	}
	slices.SortFunc(stray, byName)
	return roots, stray
}

type orgsData struct {
	listing
	Count       int
	Roots       []*orgNode
	Stray       []*orgNode
	New         action
	MaxOrgDepth int
}

func (c *Console) orgs(w http.ResponseWriter, r *http.Request, s *Session) {
	var list claiimv1.AIOrgList
	d := orgsData{listing: listAs(r.Context(), s, &list, "AIOrgs"), MaxOrgDepth: claiimv1.MaxOrgDepth,
		New: action{Href: "/orgs/new", Label: "New AIOrg", permit: can(r.Context(), s, "create", "aiorgs", "")}}
	d.Count = len(list.Items)
	d.Roots, d.Stray = orgTree(list.Items)
	c.render(w, http.StatusOK, "orgs", newView(r, s, "AIOrgs", "orgs", d))
}

// orgPolicy is a policy that reaches an org's agents, and from where.
type orgPolicy struct {
	Name, DisplayName, From string
	Rules                   int
	Ready                   ready
}

type orgData struct {
	Org      *claiimv1.AIOrg
	Children []string
	Skills   []claiimv1.Skill
	Policies []orgPolicy
	Agents   []claiimv1.Agent
	Grants   []claiimv1.CrossOrgGrant

	OrgsList, SkillsList, PoliciesList, AgentsList, GrantsList listing

	YAML                                    string
	NewSkill, NewPolicy, NewAgent, NewChild action
}

func (c *Console) org(w http.ResponseWriter, r *http.Request, s *Session) {
	ctx, name := r.Context(), r.PathValue("name")
	o := &claiimv1.AIOrg{}
	if !c.fetch(w, r, s, "orgs", client.ObjectKey{Name: name}, o) {
		return
	}
	d := orgData{Org: o, YAML: c.manifestYAML(o, o.Spec),
		NewChild:  action{Href: "/orgs/new?parent=" + name, Label: "New child AIOrg", permit: can(ctx, s, "create", "aiorgs", "")},
		NewSkill:  action{Href: "/skills/new?org=" + name, Label: "New skill", permit: can(ctx, s, "create", "skills", "")},
		NewPolicy: action{Href: "/policies/new?org=" + name, Label: "New policy", permit: can(ctx, s, "create", "policies", "")},
		NewAgent:  action{Href: "/agents/new?org=" + name, Label: "New agent", permit: can(ctx, s, "create", "agents", defaultAgentNamespace)},
	}

	var orgs claiimv1.AIOrgList
	if d.OrgsList = listAs(ctx, s, &orgs, "AIOrgs"); d.OrgsList.OK() {
		for _, x := range orgs.Items {
			if string(x.Spec.Parent) == name {
				d.Children = append(d.Children, x.Name)
			}
		}
		slices.Sort(d.Children)
	}

	var skills claiimv1.SkillList
	d.SkillsList = listAs(ctx, s, &skills, "skills")
	for _, sk := range skills.Items {
		if string(sk.Spec.Org) == name {
			d.Skills = append(d.Skills, sk)
		}
	}

	// The org's own policies, its ancestors' (a parent governs its
	// children) and those for every org (docs/policies.md).
	ancestors := strings.Split(o.Status.Path, "/")
	if len(ancestors) > 0 {
		ancestors = ancestors[:len(ancestors)-1]
	}
	var policies claiimv1.PolicyList
	d.PoliciesList = listAs(ctx, s, &policies, "policies")
	for _, p := range policies.Items {
		from := ""
		switch org := string(p.Spec.Org); {
		case org == name:
			from = "this org"
		case org == "":
			from = "every org"
		case slices.Contains(ancestors, org):
			from = "inherited from " + org
		default:
			continue
		}
		d.Policies = append(d.Policies, orgPolicy{Name: p.Name, DisplayName: p.Spec.DisplayName, From: from,
			Rules: len(p.Spec.Rules), Ready: readyOf(p.Status.Conditions)})
	}

	var agents claiimv1.AgentList
	d.AgentsList = listAs(ctx, s, &agents, "agents")
	for _, a := range agents.Items {
		if string(a.Spec.Org) == name {
			d.Agents = append(d.Agents, a)
		}
	}

	var grants claiimv1.CrossOrgGrantList
	d.GrantsList = listAs(ctx, s, &grants, "cross-org grants")
	for _, g := range grants.Items {
		if string(g.Spec.GrantingOrg) == name || string(g.Spec.ReceivingOrg) == name {
			d.Grants = append(d.Grants, g)
		}
	}
	c.render(w, http.StatusOK, "org", newView(r, s, "AIOrg "+name, "orgs", d))
}
