package console

import (
	"net/http"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func (c *Console) registerPolicies(mux *http.ServeMux) {
	mux.HandleFunc("GET /policies", c.page(c.policies))
	mux.HandleFunc("GET /policies/{name}", c.page(c.policy))
}

type policyRow struct {
	Name, DisplayName, Org, Effects string
	Rules                           int
	Generation                      int64
	Ready                           ready
	Audit                           bool // spec.enforcement: Audit
}

type policiesData struct {
	listing
	Policies []policyRow
	New      action
}

func (c *Console) policies(w http.ResponseWriter, r *http.Request, s *Session) {
	var list claiimv1.PolicyList
	d := policiesData{listing: listAs(r.Context(), s, &list, "policies"),
		New: action{Href: "/policies/new", Label: "New policy", permit: can(r.Context(), s, "create", "policies", "")}}
	for _, p := range list.Items {
		d.Policies = append(d.Policies, policyRow{Name: p.Name, DisplayName: p.Spec.DisplayName, Org: string(p.Spec.Org),
			Effects: effects(p.Spec.Rules), Rules: len(p.Spec.Rules), Generation: p.Generation, Ready: readyOf(p.Status.Conditions),
			Audit: p.Audit()})
	}
	c.render(w, http.StatusOK, "policies", newView(r, s, "Policies", "policies", d))
}

// effects counts a policy's rules by effect, Deny first: "1 Deny, 2 Allow".
func effects(rules []claiimv1.PolicyRule) string {
	n := map[claiimv1.PolicyEffect]int{}
	for _, r := range rules {
		n[r.Effect]++
	}
	var parts []string
	for _, e := range []claiimv1.PolicyEffect{claiimv1.PolicyEffectDeny, claiimv1.PolicyEffectAllow} {
		if n[e] > 0 {
			parts = append(parts, strconv.Itoa(n[e])+" "+string(e))
		}
	}
	return strings.Join(parts, ", ")
}

type ruleView struct {
	Name, Effect, Agents, Condition string
	Actions                         []claiimv1.ActionPattern
}

type policyData struct {
	Policy *claiimv1.Policy
	Rules  []ruleView
	Ready  ready
	// Admitted is the admission stamp's condition, nil until reported.
	Admitted *metav1.Condition
	// Current: the status describes the current generation.
	Current bool
	YAML    string
}

func (c *Console) policy(w http.ResponseWriter, r *http.Request, s *Session) {
	name := r.PathValue("name")
	p := &claiimv1.Policy{}
	if !c.fetch(w, r, s, "policies", client.ObjectKey{Name: name}, p) {
		return
	}
	d := policyData{Policy: p, Ready: readyOf(p.Status.Conditions), Admitted: meta.FindStatusCondition(p.Status.Conditions, claiimv1.ConditionAdmitted),
		Current: p.Status.ObservedGeneration == p.Generation, YAML: c.manifestYAML(p, p.Spec)}
	for _, rule := range p.Spec.Rules {
		d.Rules = append(d.Rules, ruleView{Name: rule.Name, Effect: string(rule.Effect), Actions: rule.Actions,
			Agents: agentsOf(rule.Agents), Condition: rule.Condition})
	}
	c.render(w, http.StatusOK, "policy", newView(r, s, "Policy "+name, "policies", d))
}

// agentsOf says in words which agents a rule applies to.
func agentsOf(sel *claiimv1.AgentSelector) string {
	switch {
	case sel == nil || len(sel.Names) == 0 && sel.Selector == nil:
		return "every agent in scope"
	case len(sel.Names) > 0:
		return strings.Join(sel.Names, ", ")
	}
	return "labels " + metav1.FormatLabelSelector(sel.Selector)
}
