// Package policytest runs declared decision tests offline: the objects a
// GitOps repository holds (AIOrg, Skill, Policy, Agent, CrossOrgGrant) and
// DecisionTest cases (test.claiim.io/v1alpha1) go through the gate's own
// decision function (gate/decide) without a cluster, and every case's
// outcome, reason and matched rules are compared with what it expects.
// `claiim test DIR` is its command (internal/cli).
package policytest

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/decide"
)

// World is the declared objects, as a user keeps them in git: specs, no
// status.
type World struct {
	Orgs     []claiimv1.AIOrg
	Skills   []claiimv1.Skill
	Policies []claiimv1.Policy
	Agents   []claiimv1.Agent
	Grants   []claiimv1.CrossOrgGrant
}

// Assumed is what a derivation took as given: people's acts in the
// cluster that a repository never holds.
type Assumed struct {
	Anchors []string // agents whose anchor's acceptance was assumed
	Grants  []string // grants whose two approvals were assumed
}

// assumedBy stands for the approver of an assumed approval.
const assumedBy = "assumed-by-claiim-test"

// Inputs is what decide.Build takes for w at now: each object as the
// apiserver would store it (generation 1, a UID) and with the status the
// manager would record, derived with the manager's own rules
// (claiimv1.Agent.PinProblem and ResolvedPhase,
// claiimv1.CrossOrgGrant.ResolveStatus). An agent's anchor is taken to
// have accepted it and both orgs to have approved each grant, unless the
// object's annotations say otherwise: those are people's acts, not in git.
// Signatures and admission stamps are the cluster's, so none are checked.
func (w *World) Inputs(now time.Time) (decide.Inputs, Assumed) {
	var as Assumed
	in := decide.Inputs{Revision: "offline", Keys: unchecked{}, IgnoreAdmission: true}
	for i := range w.Orgs {
		in.Orgs = append(in.Orgs, *stored(w.Orgs[i].DeepCopy()))
	}
	for i := range w.Skills {
		in.Skills = append(in.Skills, *stored(w.Skills[i].DeepCopy()))
	}
	for i := range w.Policies {
		in.Policies = append(in.Policies, *stored(w.Policies[i].DeepCopy()))
	}
	for i := range w.Grants {
		g := stored(w.Grants[i].DeepCopy())
		g.Status = claiimv1.CrossOrgGrantStatus{
			GrantingApprovedBy:  claiimv1.Username(g.Annotations[claiimv1.AnnotationGrantingApprovedBy]),
			ReceivingApprovedBy: claiimv1.Username(g.Annotations[claiimv1.AnnotationReceivingApprovedBy]),
		}
		if g.Status.GrantingApprovedBy == "" && g.Status.ReceivingApprovedBy == "" {
			g.Status.GrantingApprovedBy, g.Status.ReceivingApprovedBy = assumedBy, assumedBy
			as.Grants = append(as.Grants, g.Name)
		}
		g.ResolveStatus(now)
		g.Status.ObservedGeneration = g.Generation
		in.Grants = append(in.Grants, *g)
	}
	paths := orgPaths(in.Orgs)
	for i := range w.Agents {
		a := stored(w.Agents[i].DeepCopy())
		if _, ok := a.Annotations[claiimv1.AnnotationAnchorAccepted]; !ok {
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			a.Annotations[claiimv1.AnnotationAnchorAccepted] = string(a.Spec.AccountabilityAnchor)
			as.Anchors = append(as.Anchors, a.Namespace+"/"+a.Name)
		}
		if a.Spec.Lifecycle == "" {
			a.Spec.Lifecycle = claiimv1.LifecycleActive // the schema's default
		}
		a.Status = claiimv1.AgentStatus{}
		reason, msg := orgProblem(paths, string(a.Spec.Org))
		if reason == "" {
			skill := find(in.Skills, a.Spec.SkillRef.Name)
			reason, msg = a.PinProblem(skill, skill != nil && granted(in.Grants, skill, a.Spec.Org, now))
			if reason == "" {
				d := skill.Version(a.Spec.SkillRef.Version).Digest()
				a.Status.SkillVersionID, a.Status.SkillDigest = claiimv1.SkillVersionID(skill.Name, a.Spec.SkillRef.Version, d), d
			}
		}
		phase, why, msg := a.ResolvedPhase(reason, msg)
		a.Status.Phase, a.Status.ObservedGeneration = phase, a.Generation
		status := metav1.ConditionFalse
		if phase == claiimv1.AgentActive {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{Type: claiimv1.ConditionReady, Status: status,
			Reason: why, Message: msg, ObservedGeneration: a.Generation, LastTransitionTime: metav1.NewTime(now)})
		in.Agents = append(in.Agents, *a)
	}
	return in, as
}

// stored is o as the apiserver stores a new object: generation 1, a UID.
func stored[T metav1.Object](o T) T {
	if o.GetGeneration() == 0 {
		o.SetGeneration(1)
	}
	if o.GetUID() == "" {
		o.SetUID(types.UID("offline-" + o.GetNamespace() + "-" + o.GetName()))
	}
	return o
}

func find(skills []claiimv1.Skill, name string) *claiimv1.Skill {
	for i := range skills {
		if skills[i].Name == name {
			return &skills[i]
		}
	}
	return nil
}

func granted(grants []claiimv1.CrossOrgGrant, skill *claiimv1.Skill, org claiimv1.OrgName, now time.Time) bool {
	for i := range grants {
		if grants[i].ActiveAt(now) && grants[i].Covers(skill.Name, skill.Spec.Org, org) {
			return true
		}
	}
	return false
}

// orgPaths resolves every org's path to its root as the AIOrg reconciler
// does (claiimv1.OrgPath); the error says why one does not resolve.
func orgPaths(orgs []claiimv1.AIOrg) map[string]error {
	parent := make(map[string]claiimv1.OrgName, len(orgs))
	for i := range orgs {
		parent[orgs[i].Name] = orgs[i].Spec.Parent
	}
	out := make(map[string]error, len(orgs))
	for name := range parent {
		_, out[name] = claiimv1.OrgPath(name, parent[name], func(n string) (claiimv1.OrgName, bool, error) {
			p, ok := parent[n]
			return p, ok, nil
		})
	}
	return out
}

// orgProblem is the manager's check that an agent's org exists and is
// Ready (resolves to a root), offline.
func orgProblem(paths map[string]error, org string) (reason, msg string) {
	err, ok := paths[org]
	switch {
	case !ok:
		return claiimv1.ReasonOrgNotFound, fmt.Sprintf("AIOrg %q does not exist; create it before this Agent", org)
	case err != nil:
		return claiimv1.ReasonOrgNotReady, fmt.Sprintf("AIOrg %q is not ready: %v", org, err)
	}
	return "", ""
}

// unchecked takes every signature as valid: offline there is no manager
// key, and every status here was derived by the manager's rules.
type unchecked struct{}

func (unchecked) Verify(attest.Message, string) error { return nil }
