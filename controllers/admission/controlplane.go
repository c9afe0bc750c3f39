package admission

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Reasons recorded for control-plane admissions.
const (
	ReasonPIMSession   = "PIM_SESSION"
	ReasonNoPIMSession = "NO_PIM_SESSION"
	ReasonSafety       = "SAFETY_ACTION"
	ReasonOwnAct       = "OWN_ACT"
	ReasonInvalid      = "INVALID"
)

// verdict is what the per-kind rules say about a change.
type verdict struct {
	refuse string // non-empty: refused for everyone, with this message
	// noSession: the change is allowed without an elevated session
	// (a safety action or a person's own act), with this reason. With
	// refuse set, it marks a refused own act: its own reason is what the
	// person needs to hear, not a request for a session.
	noSession string
	what      string // what the change is, for Chron
}

// validateControlPlane requires an active PIM session for every change to
// AIOrgs, Skills, Policies, Agents and CrossOrgGrants, and applies each
// kind's rules, which hold even for an elevated user.
func (h *handlers) validateControlPlane(ctx context.Context, req admission.Request) admission.Response {
	user := req.UserInfo.Username
	if user == h.ManagerUsername {
		return admission.Allowed("the manager's own change")
	}
	newObj, oldObj, err := h.objects(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var v verdict
	switch o := newOrOld(newObj, oldObj).(type) {
	case *claiimv1.Skill:
		v, err = h.checkSkill(ctx, req, asSkill(newObj), asSkill(oldObj))
	case *claiimv1.Agent:
		v, err = h.checkAgent(ctx, req, asAgent(newObj), asAgent(oldObj))
	case *claiimv1.CrossOrgGrant:
		v, err = h.checkGrant(ctx, req, asGrant(newObj), asGrant(oldObj))
	default:
		_ = o
	}
	if err != nil {
		return admission.Errored(http.StatusServiceUnavailable, err)
	}
	rec := &chron.Record{Kind: chron.KindAdmissionAdmitted, Message: v.what}
	if a := asAgent(newOrOld(newObj, oldObj)); a != nil {
		rec.AgentName, rec.AgentNamespace, rec.AgentUID, rec.Org, rec.Anchor = a.Name, a.Namespace, string(a.UID), string(a.Spec.Org), string(a.Spec.AccountabilityAnchor)
	}
	if v.noSession != "" && v.refuse == "" {
		rec.Reason = v.noSession
		return h.allow(ctx, req, rec, admission.Allowed(""))
	}
	// No session, no business: that refusal comes first; the kind's own
	// rules then hold even for an elevated user.
	session, err := h.activeSession(ctx, user)
	if err != nil {
		return admission.Errored(http.StatusServiceUnavailable, err)
	}
	if v.refuse != "" && (session != nil || v.noSession != "") {
		return h.deny(ctx, req, chron.KindAdmissionRefused, ReasonInvalid, v.refuse)
	}
	if session == nil {
		return h.deny(ctx, req, chron.KindAdmissionRefused, ReasonNoPIMSession, fmt.Sprintf(
			"PIM: %s %s %q needs an active PIM session for %s, and there is none (or it expired). "+
				"Request elevation with a PIMRequest stating your reason (kubectl create -f pimrequest.yaml) "+
				"and have another approver approve it (kubectl annotate pimrequest <name> claiim.io/approve=\"<comment>\"); then retry",
			verbing(string(req.Operation)), kindOf(req), req.Name, user))
	}
	rec.Reason = ReasonPIMSession
	if rec.Message == "" {
		rec.Message = fmt.Sprintf("%s %s %q under PIM session %s", verbing(string(req.Operation)), kindOf(req), req.Name, session.Name)
	}
	rec.Context = map[string]any{"pim_session": session.Name, "approved_by": session.Annotations[claiimv1.AnnotationApprovedBy]}
	return h.allow(ctx, req, rec, admission.Allowed(""))
}

// checkSkill: published versions never change or disappear (the CRD's CEL
// rules are the first lock, this is the second); a skill in use can't go.
func (h *handlers) checkSkill(ctx context.Context, req admission.Request, s, old *claiimv1.Skill) (verdict, error) {
	switch req.Operation {
	case admissionv1.Update:
		for i := range old.Spec.Versions {
			ov := &old.Spec.Versions[i]
			nv := s.Version(ov.Version)
			if nv == nil {
				return verdict{refuse: fmt.Sprintf("skill version %d is published and cannot be removed", ov.Version)}, nil
			}
			if !equality.Semantic.DeepEqual(ov, nv) {
				return verdict{refuse: fmt.Sprintf("skill version %d is published and immutable; publish the change as a new version instead", ov.Version)}, nil
			}
		}
	case admissionv1.Delete:
		agents := &claiimv1.AgentList{}
		if err := h.Reader.List(ctx, agents); err != nil {
			return verdict{}, fmt.Errorf("reading agents: %w", err)
		}
		var users []string
		for _, a := range agents.Items {
			if a.Spec.SkillRef.Name == old.Name && a.Spec.Lifecycle != claiimv1.LifecycleDecommissioned {
				users = append(users, a.Namespace+"/"+a.Name)
			}
		}
		if len(users) > 0 {
			slices.Sort(users)
			return verdict{refuse: fmt.Sprintf("skill %q is used by agent(s) %s; re-point or decommission them first", old.Name, strings.Join(users, ", "))}, nil
		}
	}
	return verdict{}, nil
}

// checkAgent: the pinned version must exist; decommissioning is final;
// only the anchor accepts, as themself; suspending needs no session.
func (h *handlers) checkAgent(ctx context.Context, req admission.Request, a, old *claiimv1.Agent) (verdict, error) {
	user := req.UserInfo.Username
	if req.Operation == admissionv1.Delete {
		return verdict{what: fmt.Sprintf("agent %s/%s deleted", old.Namespace, old.Name)}, nil
	}
	if old != nil && old.Spec.Lifecycle == claiimv1.LifecycleDecommissioned && !equality.Semantic.DeepEqual(a.Spec, old.Spec) {
		return verdict{refuse: "the agent is decommissioned, which is permanent: it cannot be revived or changed. Provision a new agent"}, nil
	}
	if old == nil || old.Spec.SkillRef != a.Spec.SkillRef || old.Spec.Org != a.Spec.Org {
		if msg, err := h.skillProblem(ctx, a); err != nil || msg != "" {
			return verdict{refuse: msg}, err
		}
	}
	if old == nil {
		return verdict{what: fmt.Sprintf("agent %s/%s provisioned in org %s, anchor %s, skill %s version %d",
			a.Namespace, a.Name, a.Spec.Org, a.Spec.AccountabilityAnchor, a.Spec.SkillRef.Name, a.Spec.SkillRef.Version)}, nil
	}

	oldAcc, newAcc := old.Annotations[claiimv1.AnnotationAnchorAccepted], a.Annotations[claiimv1.AnnotationAnchorAccepted]
	accepting := newAcc != "" && newAcc != oldAcc
	if accepting && (user != string(a.Spec.AccountabilityAnchor) || newAcc != user) {
		return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("only the accountability anchor %s can accept this agent, as themself (kubectl annotate agent %s %s=%s, run by %s)",
			a.Spec.AccountabilityAnchor, a.Name, claiimv1.AnnotationAnchorAccepted, a.Spec.AccountabilityAnchor, a.Spec.AccountabilityAnchor)}, nil
	}

	// What changed besides acceptance and lifecycle?
	sameRest := equality.Semantic.DeepEqual(withoutLifecycle(a.Spec), withoutLifecycle(old.Spec)) &&
		equality.Semantic.DeepEqual(a.Labels, old.Labels) &&
		equality.Semantic.DeepEqual(withoutKey(a.Annotations, claiimv1.AnnotationAnchorAccepted), withoutKey(old.Annotations, claiimv1.AnnotationAnchorAccepted))
	if !sameRest {
		return verdict{what: fmt.Sprintf("agent %s/%s changed", a.Namespace, a.Name)}, nil
	}
	switch {
	case old.Spec.Lifecycle != claiimv1.LifecycleSuspended && a.Spec.Lifecycle == claiimv1.LifecycleSuspended && !accepting:
		return verdict{noSession: ReasonSafety, what: fmt.Sprintf("agent %s/%s suspended (a safety action: no PIM session needed)", a.Namespace, a.Name)}, nil
	case accepting && a.Spec.Lifecycle == old.Spec.Lifecycle:
		return verdict{noSession: ReasonOwnAct, what: fmt.Sprintf("agent %s/%s accepted by its accountability anchor %s", a.Namespace, a.Name, user)}, nil
	case old.Spec.Lifecycle == claiimv1.LifecycleSuspended && a.Spec.Lifecycle == claiimv1.LifecycleActive:
		return verdict{what: fmt.Sprintf("agent %s/%s resumed", a.Namespace, a.Name)}, nil
	case a.Spec.Lifecycle == claiimv1.LifecycleDecommissioned && old.Spec.Lifecycle != a.Spec.Lifecycle:
		return verdict{what: fmt.Sprintf("agent %s/%s decommissioned (permanent)", a.Namespace, a.Name)}, nil
	}
	return verdict{}, nil
}

// skillProblem says why the agent's pinned skill version can't be used.
func (h *handlers) skillProblem(ctx context.Context, a *claiimv1.Agent) (string, error) {
	ref := a.Spec.SkillRef
	s := &claiimv1.Skill{}
	// Live read: a skill applied together with its agent may not be cached yet.
	if err := h.APIReader.Get(ctx, client.ObjectKey{Name: ref.Name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("skill %q does not exist; create and publish it first, or point spec.skillRef at an existing skill", ref.Name), nil
		}
		return "", fmt.Errorf("reading skill %q: %w", ref.Name, err)
	}
	if s.Version(ref.Version) == nil {
		return fmt.Sprintf("skill %q has no published version %d (it has 1 to %d)", ref.Name, ref.Version, len(s.Spec.Versions)), nil
	}
	if s.Spec.Org == a.Spec.Org {
		return "", nil
	}
	grants := &claiimv1.CrossOrgGrantList{}
	if err := h.Reader.List(ctx, grants); err != nil {
		return "", fmt.Errorf("reading grants: %w", err)
	}
	now := h.now()
	for _, g := range grants.Items {
		if g.Status.Phase == claiimv1.GrantActive && !g.Spec.Revoked && g.Spec.GrantingOrg == s.Spec.Org && g.Spec.ReceivingOrg == a.Spec.Org &&
			g.Status.ExpiresAt != nil && now.Before(g.Status.ExpiresAt.Time) && slices.Contains(g.Spec.Skills, s.Name) {
			return "", nil
		}
	}
	return fmt.Sprintf("skill %q belongs to org %q, not %q, and no active CrossOrgGrant shares it; use a skill of org %q or have both orgs approve a grant",
		s.Name, s.Spec.Org, a.Spec.Org, a.Spec.Org), nil
}

// checkGrant: each side's approval comes from an admin of that org (RBAC
// verb approve-grant on the AIOrg), two different people; revoking is a
// safety action.
func (h *handlers) checkGrant(ctx context.Context, req admission.Request, g, old *claiimv1.CrossOrgGrant) (verdict, error) {
	if req.Operation != admissionv1.Update {
		return verdict{}, nil
	}
	approvals := 0
	for _, d := range []struct {
		set, by, org string
	}{
		{claiimv1.AnnotationApproveGranting, claiimv1.AnnotationGrantingApprovedBy, string(g.Spec.GrantingOrg)},
		{claiimv1.AnnotationApproveReceiving, claiimv1.AnnotationReceivingApprovedBy, string(g.Spec.ReceivingOrg)},
	} {
		oldBy, newBy := old.Annotations[d.by], g.Annotations[d.by]
		if oldBy != "" && (newBy != oldBy || g.Annotations[d.set] != old.Annotations[d.set]) {
			return verdict{refuse: fmt.Sprintf("the approval %s is recorded and cannot be changed or removed", d.set)}, nil
		}
		if oldBy == "" && newBy != "" {
			if newBy != req.UserInfo.Username {
				return verdict{refuse: fmt.Sprintf("annotation %s is written by admission only", d.by)}, nil
			}
			ok, err := h.can(ctx, req, "approve-grant", "aiorgs", d.org)
			if err != nil {
				return verdict{}, err
			}
			if !ok {
				return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("%s is not an admin of org %q: approving needs the RBAC verb 'approve-grant' on aiorgs.claiim.io/%s", newBy, d.org, d.org)}, nil
			}
			approvals++
		}
	}
	gBy, rBy := g.Annotations[claiimv1.AnnotationGrantingApprovedBy], g.Annotations[claiimv1.AnnotationReceivingApprovedBy]
	if gBy != "" && gBy == rBy {
		return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("both sides of a grant must be approved by two different people; %s already approved the other side", gBy)}, nil
	}
	specSame := equality.Semantic.DeepEqual(withoutRevoked(g.Spec), withoutRevoked(old.Spec)) && equality.Semantic.DeepEqual(g.Labels, old.Labels)
	switch {
	case approvals > 0 && specSame && g.Spec.Revoked == old.Spec.Revoked:
		return verdict{noSession: ReasonOwnAct, what: fmt.Sprintf("grant %s approved (granting: %s, receiving: %s)", g.Name, gBy, rBy)}, nil
	case approvals == 0 && specSame && g.Spec.Revoked && !old.Spec.Revoked:
		return verdict{noSession: ReasonSafety, what: fmt.Sprintf("grant %s revoked (a safety action: no PIM session needed)", g.Name)}, nil
	}
	return verdict{}, nil
}

func (h *handlers) objects(req admission.Request) (runtime.Object, runtime.Object, error) {
	var newObj, oldObj runtime.Object
	mk := func() (runtime.Object, error) {
		switch req.Kind.Kind {
		case "AIOrg":
			return &claiimv1.AIOrg{}, nil
		case "Skill":
			return &claiimv1.Skill{}, nil
		case "Policy":
			return &claiimv1.Policy{}, nil
		case "Agent":
			return &claiimv1.Agent{}, nil
		case "CrossOrgGrant":
			return &claiimv1.CrossOrgGrant{}, nil
		}
		return nil, fmt.Errorf("unexpected kind %s", req.Kind.Kind)
	}
	if len(req.Object.Raw) > 0 {
		o, err := mk()
		if err != nil {
			return nil, nil, err
		}
		if err := h.decoder.DecodeRaw(req.Object, o); err != nil {
			return nil, nil, err
		}
		newObj = o
	}
	if len(req.OldObject.Raw) > 0 {
		o, err := mk()
		if err != nil {
			return nil, nil, err
		}
		if err := h.decoder.DecodeRaw(req.OldObject, o); err != nil {
			return nil, nil, err
		}
		oldObj = o
	}
	return newObj, oldObj, nil
}

func newOrOld(n, o runtime.Object) runtime.Object {
	if n != nil {
		return n
	}
	return o
}

func asSkill(o runtime.Object) *claiimv1.Skill         { s, _ := o.(*claiimv1.Skill); return s }
func asAgent(o runtime.Object) *claiimv1.Agent         { a, _ := o.(*claiimv1.Agent); return a }
func asGrant(o runtime.Object) *claiimv1.CrossOrgGrant { g, _ := o.(*claiimv1.CrossOrgGrant); return g }

func withoutLifecycle(s claiimv1.AgentSpec) claiimv1.AgentSpec { s.Lifecycle = ""; return s }

func withoutRevoked(s claiimv1.CrossOrgGrantSpec) claiimv1.CrossOrgGrantSpec {
	s.Revoked = false
	return s
}

func withoutKey(m map[string]string, k string) map[string]string {
	out := make(map[string]string, len(m))
	for kk, v := range m {
		if kk != k {
			out[kk] = v
		}
	}
	return out
}

func kindOf(req admission.Request) string { return req.Kind.Kind }
