// Package whatif replays recorded agent requests through the gate's own
// decision function (gate/decide) twice, over the current objects and
// over the current objects plus a proposed change, and reports the
// requests whose answer would change. The replay core (this file,
// replay.go, report.go) does no I/O; load.go reads the objects and Chron.
package whatif

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/decide"
)

// World is the current objects, as the gate builds its snapshot from.
type World struct {
	Orgs     []claiimv1.AIOrg
	Skills   []claiimv1.Skill
	Policies []claiimv1.Policy
	Agents   []claiimv1.Agent
	Grants   []claiimv1.CrossOrgGrant
	// Keys verify the manager's attestations and admission stamps, as the
	// gate does. Nil takes every present attestation as it is (a reader
	// who may not read the published keys); the report says so.
	Keys attest.Verifier
}

// Edit is one object of a change: created or replaced, or deleted.
type Edit struct {
	// Object is an *AIOrg, *Skill, *Policy, *Agent or *CrossOrgGrant.
	// Its status is ignored: status is the manager's, derived here as the
	// manager would.
	Object metav1.Object
	Delete bool
	// Apply merges the object's labels and annotations over the live
	// object's, as `kubectl apply` of a manifest does; without it the
	// object replaces the live one's metadata (an admission request).
	Apply bool
}

// Change is what is proposed.
type Change []Edit

// Describe names each edit: "update Policy/no-prod".
func (c Change) Describe(w World) []string {
	out := make([]string, 0, len(c))
	for _, e := range c {
		verb := "delete"
		if !e.Delete {
			verb = "create"
			if w.find(e.Object) {
				verb = "update"
			}
		}
		out = append(out, verb+" "+Ref(e.Object))
	}
	return out
}

// Ref names an object: "Policy/name", "Agent/namespace/name".
func Ref(o metav1.Object) string {
	k := kindOf(o)
	if o.GetNamespace() != "" {
		return k + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	return k + "/" + o.GetName()
}

func kindOf(o metav1.Object) string {
	switch o.(type) {
	case *claiimv1.AIOrg:
		return "AIOrg"
	case *claiimv1.Skill:
		return "Skill"
	case *claiimv1.Policy:
		return "Policy"
	case *claiimv1.Agent:
		return "Agent"
	case *claiimv1.CrossOrgGrant:
		return "CrossOrgGrant"
	}
	return fmt.Sprintf("%T", o)
}

func (w World) find(o metav1.Object) bool {
	switch o := o.(type) {
	case *claiimv1.AIOrg:
		return index(w.Orgs, o) >= 0
	case *claiimv1.Skill:
		return index(w.Skills, o) >= 0
	case *claiimv1.Policy:
		return index(w.Policies, o) >= 0
	case *claiimv1.Agent:
		return index(w.Agents, o) >= 0
	case *claiimv1.CrossOrgGrant:
		return index(w.Grants, o) >= 0
	}
	return false
}

// object is a pointer to one of the API kinds.
type object[T any] interface {
	*T
	metav1.Object
}

func index[T any, P object[T]](items []T, o metav1.Object) int {
	for i := range items {
		p := P(&items[i])
		if p.GetName() == o.GetName() && p.GetNamespace() == o.GetNamespace() {
			return i
		}
	}
	return -1
}

// proposal applies a change to a world, as admission and the manager
// would store it: every created or replaced object stamped as admitted
// and its status as the manager would write it, signed by a throwaway
// key (eph) that only this what-if's proposed snapshot accepts.
type proposal struct {
	now    time.Time
	eph    *attest.Signer
	keys   attest.Verifier // the world's
	agents map[string]bool // agents whose status the manager would rewrite
	skills map[string]bool // skills changed: their agents' phases are re-derived
}

// with is w plus c.
func (w World) with(c Change, now time.Time, eph *attest.Signer) (World, error) {
	p := &proposal{now: now, eph: eph, keys: w.verifier(), agents: map[string]bool{}, skills: map[string]bool{}}
	out := w
	var err error
	for _, e := range c {
		switch o := e.Object.(type) {
		case *claiimv1.AIOrg:
			out.Orgs, err = put(p, out.Orgs, o, e, func(a, b *claiimv1.AIOrg) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) })
		case *claiimv1.Skill:
			p.skills[o.Name] = true
			out.Skills, err = put(p, out.Skills, o, e, func(a, b *claiimv1.Skill) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) })
		case *claiimv1.Policy:
			out.Policies, err = put(p, out.Policies, o, e, func(a, b *claiimv1.Policy) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) })
		case *claiimv1.Agent:
			p.agents[o.Namespace+"/"+o.Name] = true
			out.Agents, err = put(p, out.Agents, o, e, func(a, b *claiimv1.Agent) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) })
		case *claiimv1.CrossOrgGrant:
			out.Grants, err = put(p, out.Grants, o, e, func(a, b *claiimv1.CrossOrgGrant) bool { return equality.Semantic.DeepEqual(a.Spec, b.Spec) })
		default:
			err = fmt.Errorf("a what-if takes AIOrgs, Skills, Policies, Agents and CrossOrgGrants, not %T", e.Object)
		}
		if err != nil {
			return World{}, err
		}
	}
	out.Agents = p.agentStatuses(out)
	return out, nil
}

// put is items with o created, replaced or deleted, never changing the
// caller's slice.
func put[T any, P object[T]](p *proposal, items []T, o P, e Edit, sameSpec func(a, b P) bool) ([]T, error) {
	i := index[T, P](items, o)
	out := make([]T, 0, len(items)+1)
	out = append(out, items...)
	if e.Delete {
		if i < 0 {
			return nil, fmt.Errorf("%s does not exist, so it cannot be deleted", Ref(o))
		}
		return append(out[:i], out[i+1:]...), nil
	}
	next := new(T)
	*next = *o // shallow: only metadata is rewritten below, on fresh maps
	np := P(next)
	var prior metav1.Object // a typed nil P would not be a nil interface
	same := false
	if i >= 0 {
		prior, same = P(&out[i]), sameSpec(np, P(&out[i]))
	}
	if err := p.admit(np, prior, e.Apply, same); err != nil {
		return nil, err
	}
	if i >= 0 {
		copyStatus(np, prior)
		out[i] = *next
	} else {
		clearStatus(np)
		out = append(out, *next)
	}
	return out, nil
}

// admit makes obj what the apiserver would store for this write after
// admission: identity and generation from the stored object, and a stamp.
func (p *proposal) admit(obj, prior metav1.Object, apply, sameSpec bool) error {
	labels, ann := fresh(obj.GetLabels()), fresh(obj.GetAnnotations())
	if prior != nil {
		if apply {
			labels, ann = merged(prior.GetLabels(), labels), merged(prior.GetAnnotations(), ann)
		}
		obj.SetUID(prior.GetUID())
		obj.SetCreationTimestamp(prior.GetCreationTimestamp())
		gen := prior.GetGeneration()
		if !sameSpec {
			gen++
		}
		obj.SetGeneration(gen)
	} else {
		obj.SetUID(types.UID("whatif-" + obj.GetName()))
		obj.SetCreationTimestamp(metav1.NewTime(p.now))
		obj.SetGeneration(1)
	}
	obj.SetDeletionTimestamp(nil)
	delete(ann, claiimv1.AnnotationAdmitted)
	obj.SetLabels(labels)
	obj.SetAnnotations(ann)
	st, err := attest.NewStamp(p.eph, obj, prior, p.now)
	if err != nil {
		return err
	}
	ann[claiimv1.AnnotationAdmitted] = st
	return nil
}

func fresh(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func merged(live, over map[string]string) map[string]string {
	out := fresh(live)
	for k, v := range over {
		out[k] = v
	}
	return out
}

// copyStatus keeps the stored status: a write's status is ignored (the
// status subresource), and it is the manager's.
func copyStatus(dst, src metav1.Object) {
	switch d := dst.(type) {
	case *claiimv1.AIOrg:
		d.Status = *src.(*claiimv1.AIOrg).Status.DeepCopy()
	case *claiimv1.Skill:
		d.Status = *src.(*claiimv1.Skill).Status.DeepCopy()
	case *claiimv1.Policy:
		d.Status = *src.(*claiimv1.Policy).Status.DeepCopy()
	case *claiimv1.Agent:
		d.Status = *src.(*claiimv1.Agent).Status.DeepCopy()
	case *claiimv1.CrossOrgGrant:
		d.Status = *src.(*claiimv1.CrossOrgGrant).Status.DeepCopy()
	}
}

func clearStatus(o metav1.Object) {
	switch d := o.(type) {
	case *claiimv1.AIOrg:
		d.Status = claiimv1.AIOrgStatus{}
	case *claiimv1.Skill:
		d.Status = claiimv1.SkillStatus{}
	case *claiimv1.Policy:
		d.Status = claiimv1.PolicyStatus{}
	case *claiimv1.Agent:
		d.Status = claiimv1.AgentStatus{}
	case *claiimv1.CrossOrgGrant:
		d.Status = claiimv1.CrossOrgGrantStatus{}
	}
}

// agentStatuses re-derives, as the manager's reconciler would, the status
// of every agent the change touches (itself, or the skill it is pinned
// to): its phase for the new generation, its token revoked when it is
// decommissioned. Only a status the manager signed is carried over; one
// it did not sign stays unsigned, as the gate would see it.
func (p *proposal) agentStatuses(w World) []claiimv1.Agent {
	out := make([]claiimv1.Agent, len(w.Agents))
	for i := range w.Agents {
		a := &w.Agents[i]
		out[i] = *a
		if !p.agents[a.Namespace+"/"+a.Name] && !p.skills[a.Spec.SkillRef.Name] {
			continue
		}
		// The attestation covers identity, token epoch and status, not
		// the generation: a status the manager signed for the stored
		// object still verifies on the edited copy, which carries it.
		if p.keys.Verify(attest.Agent(a), a.Status.Attestation) != nil {
			continue
		}
		b := a.DeepCopy()
		b.Status.Phase = agentPhase(b, w, p.now, p.keys)
		b.Status.ObservedGeneration = b.Generation
		b.Status.SkillVersionID, b.Status.SkillDigest = pinnedVersion(b, w)
		if b.Status.Phase == claiimv1.AgentDecommissioned && b.Status.Token != nil && b.Status.Token.RevokedAt == nil {
			at := metav1.NewTime(p.now)
			b.Status.Token.RevokedAt = &at
		}
		b.Status.Attestation = p.eph.Sign(attest.Agent(b))
		out[i] = *b
	}
	return out
}

// agentPhase is the phase the manager's reconciler records: the agent's
// phase as claiimv1.Agent.ResolvedPhase derives it, Pending while its
// pinned skill version does not resolve (claiimv1.Agent.PinProblem). An
// org that does not resolve the decision function denies by itself.
func agentPhase(a *claiimv1.Agent, w World, now time.Time, keys attest.Verifier) claiimv1.AgentPhase {
	var skill *claiimv1.Skill
	for i := range w.Skills {
		if w.Skills[i].Name == a.Spec.SkillRef.Name {
			skill = &w.Skills[i]
		}
	}
	reason, msg := a.PinProblem(skill, skill != nil && granted(w, skill, a.Spec.Org, now, keys))
	phase, _, _ := a.ResolvedPhase(reason, msg)
	return phase
}

// pinnedVersion is the id and digest of the skill version a is pinned
// to, as the manager records them in status; empty when it is missing.
func pinnedVersion(a *claiimv1.Agent, w World) (string, string) {
	for i := range w.Skills {
		if sk := &w.Skills[i]; sk.Name == a.Spec.SkillRef.Name {
			id, d, _ := sk.VersionID(a.Spec.SkillRef.Version)
			return id, d
		}
	}
	return "", ""
}

func granted(w World, skill *claiimv1.Skill, org claiimv1.OrgName, now time.Time, keys attest.Verifier) bool {
	for i := range w.Grants {
		g := &w.Grants[i]
		if g.ActiveAt(now) && g.Covers(skill.Name, skill.Spec.Org, org) && keys.Verify(attest.Grant(g), g.Status.Attestation) == nil {
			return true
		}
	}
	return false
}

// inputs is what decide.Build takes for w, verified with keys.
func (w World) inputs(keys attest.Verifier) decide.Inputs {
	return decide.Inputs{Orgs: w.Orgs, Skills: w.Skills, Policies: w.Policies, Agents: w.Agents, Grants: w.Grants, Keys: keys}
}

func (w World) verifier() attest.Verifier {
	if w.Keys == nil {
		return AsIs{}
	}
	return w.Keys
}

// AsIs takes every present attestation as the manager's: the view of a
// reader who may not read the published keys.
type AsIs struct{}

func (AsIs) Verify(_ attest.Message, att string) error {
	if att == "" {
		return attest.ErrMissing
	}
	return nil
}

// either accepts what a or b accepts: the proposed snapshot takes the
// world's keys and the what-if's throwaway one.
type either struct{ a, b attest.Verifier }

func (e either) Verify(m attest.Message, att string) error {
	if e.a.Verify(m, att) == nil {
		return nil
	}
	return e.b.Verify(m, att)
}
