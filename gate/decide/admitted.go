package decide

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// The gate counts only admitted generations. An object whose admission
// stamp does not match its current generation and content was changed
// past the webhooks (deleted or bypassed): whatever it now says is not
// used to decide. Rather than guess what the admitted version said, the
// gate denies every decision that depends on the object (fail closed,
// and simple):
//
//   - an AIOrg, or a Policy scoped to an org: every agent of that org and
//     of its descendants, and every agent using a skill of one of them
//     (a skill is lent with its owner's Denies);
//   - a Policy for every org: every agent;
//   - a Skill: every agent pinned to it;
//   - a CrossOrgGrant: every agent of the receiving org using a skill it
//     covers (and the grant counts for nothing);
//   - an Agent: that agent.

// ReasonNotAdmitted: a decision depends on an object changed past
// admission.
const ReasonNotAdmitted = "NOT_ADMITTED"

// unadmitted is what was changed past admission, by what it affects;
// each value says so in words.
type unadmitted struct {
	all    string            // an unscoped Policy
	orgs   map[string]string // an AIOrg or a scoped Policy, by org
	skills map[string]string // a Skill, by name
	grants map[*claiimv1.CrossOrgGrant]string
	agents map[string]string // an Agent, by "namespace/name"
	// skillOrg is each skill's org, to find its chain.
	skillOrg map[string]string
}

func findUnadmitted(in Inputs) *unadmitted {
	u := &unadmitted{orgs: map[string]string{}, skills: map[string]string{}, grants: map[*claiimv1.CrossOrgGrant]string{},
		agents: map[string]string{}, skillOrg: make(map[string]string, len(in.Skills))}
	for i := range in.Skills {
		u.skillOrg[in.Skills[i].Name] = string(in.Skills[i].Spec.Org)
	}
	if in.IgnoreAdmission {
		return u
	}
	first := func(m map[string]string, k, why string) {
		if _, ok := m[k]; !ok {
			m[k] = why
		}
	}
	for i := range in.Orgs {
		if why := notAdmitted(in.Keys, &in.Orgs[i], "AIOrg"); why != "" {
			first(u.orgs, in.Orgs[i].Name, why)
		}
	}
	for i := range in.Policies {
		p := &in.Policies[i]
		why := notAdmitted(in.Keys, p, "Policy")
		switch {
		case why == "":
		case p.Spec.Org == "" && u.all == "":
			u.all = why
		case p.Spec.Org != "":
			first(u.orgs, string(p.Spec.Org), why)
		}
	}
	for i := range in.Skills {
		if why := notAdmitted(in.Keys, &in.Skills[i], "Skill"); why != "" {
			u.skills[in.Skills[i].Name] = why
		}
	}
	for i := range in.Grants {
		if why := notAdmitted(in.Keys, &in.Grants[i], "CrossOrgGrant"); why != "" {
			u.grants[&in.Grants[i]] = why
		}
	}
	for i := range in.Agents {
		if why := notAdmitted(in.Keys, &in.Agents[i], "Agent"); why != "" {
			u.agents[in.Agents[i].Namespace+"/"+in.Agents[i].Name] = why
		}
	}
	return u
}

// affecting says why a's decisions depend on something changed past
// admission, "" when nothing does.
func (u *unadmitted) affecting(s *Snapshot, a *claiimv1.Agent) string {
	if why := u.agents[a.Namespace+"/"+a.Name]; why != "" {
		return why
	}
	if u.all != "" {
		return u.all
	}
	org, skill := string(a.Spec.Org), a.Spec.SkillRef.Name
	skillOrg := u.skillOrg[skill]
	for _, o := range append(chain(s, org), chain(s, skillOrg)...) {
		if why := u.orgs[o]; why != "" {
			return why
		}
	}
	if why := u.skills[skill]; why != "" {
		return why
	}
	for g, why := range u.grants {
		if skillOrg != org && g.Covers(skill, claiimv1.OrgName(skillOrg), claiimv1.OrgName(org)) {
			return why
		}
	}
	return ""
}

// chain is the org and its ancestors; just the org when its tree is
// broken (the agent is refused for that anyway).
func chain(s *Snapshot, org string) []string {
	if org == "" {
		return nil
	}
	if c := s.ancestors[org]; c != nil {
		return c
	}
	return []string{org}
}

// notAdmitted says, in words a platform engineer can act on, why obj
// does not count; "" when its stamp matches it.
func notAdmitted(keys attest.Verifier, obj metav1.Object, kind string) string {
	if keys == nil {
		keys = attest.PublicKeys{}
	}
	err := attest.VerifyStamp(keys, obj)
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%s %s generation %d was changed without admission (%v), so the gate does not use it and denies what depends on it: "+
		"re-apply it under a PIM session (kubectl apply -f <its manifest>); its Admitted condition and Chron (admission.bypassed) say more",
		kind, name(obj), obj.GetGeneration(), err)
}

func name(obj metav1.Object) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}
