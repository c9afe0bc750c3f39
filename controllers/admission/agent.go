package admission

import (
	"context"
	"fmt"
	"maps"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// agentWebhook: the pinned version must exist (or be shared by an active
// grant); decommissioning is final; only the anchor accepts, as themself;
// suspending needs no session. Every other change needs PIM.
type agentWebhook struct{ h *handlers }

var (
	_ admission.Validator[*claiimv1.Agent] = agentWebhook{}
	_ admission.Defaulter[*claiimv1.Agent] = agentWebhook{}
)

// Default handles anchor acceptance at creation: when the creator is the
// anchor, acceptance is implicit (the seed's onboarding); nobody else can
// accept on the anchor's behalf. Then it stamps.
func (w agentWebhook) Default(ctx context.Context, a *claiimv1.Agent) error {
	req, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	if req.Operation != admissionv1.Create {
		return w.h.stamp(ctx, a)
	}
	ann := a.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if req.UserInfo.Username == string(a.Spec.AccountabilityAnchor) {
		ann[claiimv1.AnnotationAnchorAccepted] = req.UserInfo.Username
	} else {
		delete(ann, claiimv1.AnnotationAnchorAccepted)
	}
	for _, k := range managerOnly { // a new agent has had no token
		delete(ann, k)
	}
	a.SetAnnotations(ann)
	return w.h.stamp(ctx, a)
}

func (w agentWebhook) ValidateCreate(ctx context.Context, a *claiimv1.Agent) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, about(a, func(admission.Request) (verdict, error) {
		if msg, err := w.skillProblem(ctx, a); err != nil || msg != "" {
			return verdict{refuse: msg}, err
		}
		return verdict{what: fmt.Sprintf("agent %s/%s provisioned in org %s, anchor %s, skill %s version %d",
			a.Namespace, a.Name, a.Spec.Org, a.Spec.AccountabilityAnchor, a.Spec.SkillRef.Name, a.Spec.SkillRef.Version)}, nil
	}))
}

func (w agentWebhook) ValidateUpdate(ctx context.Context, old, a *claiimv1.Agent) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, about(a, func(req admission.Request) (verdict, error) { return w.update(ctx, req, old, a) }))
}

func (w agentWebhook) ValidateDelete(ctx context.Context, old *claiimv1.Agent) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, about(old, func(admission.Request) (verdict, error) {
		return verdict{what: fmt.Sprintf("agent %s/%s deleted", old.Namespace, old.Name)}, nil
	}))
}

// about names the agent in the Chron row of whatever the rules decide.
func about(a *claiimv1.Agent, r rules) rules {
	return func(req admission.Request) (verdict, error) {
		v, err := r(req)
		v.agent = a
		return v, err
	}
}

// managerOnly are the agent annotations only the manager writes: the gate
// checks the token's attestation against them, so setting one back would
// bring back a rotated or revoked token.
var managerOnly = []string{claiimv1.AnnotationTokenEpoch, claiimv1.AnnotationTokenRotated}

func (w agentWebhook) update(ctx context.Context, req admission.Request, old, a *claiimv1.Agent) (verdict, error) {
	user := req.UserInfo.Username
	for _, k := range managerOnly {
		if old.Annotations[k] != a.Annotations[k] {
			return verdict{refuse: fmt.Sprintf("annotation %s is written by the manager only; to replace the agent's token, set %s to a new value",
				k, claiimv1.AnnotationRotateToken)}, nil
		}
	}
	if old.Spec.Lifecycle == claiimv1.LifecycleDecommissioned && !equality.Semantic.DeepEqual(a.Spec, old.Spec) {
		return verdict{refuse: "the agent is decommissioned, which is permanent: it cannot be revived or changed. Provision a new agent"}, nil
	}
	if old.Spec.SkillRef != a.Spec.SkillRef || old.Spec.Org != a.Spec.Org {
		if msg, err := w.skillProblem(ctx, a); err != nil || msg != "" {
			return verdict{refuse: msg}, err
		}
	}

	oldAcc, newAcc := old.Annotations[claiimv1.AnnotationAnchorAccepted], a.Annotations[claiimv1.AnnotationAnchorAccepted]
	accepting := newAcc != "" && newAcc != oldAcc
	if accepting && (user != string(a.Spec.AccountabilityAnchor) || newAcc != user) {
		return verdict{noSession: ReasonOwnAct, refuse: fmt.Sprintf("only the accountability anchor %s can accept this agent, as themself (kubectl annotate agent %s %s=%s, run by %s)",
			a.Spec.AccountabilityAnchor, a.Name, claiimv1.AnnotationAnchorAccepted, a.Spec.AccountabilityAnchor, a.Spec.AccountabilityAnchor)}, nil
	}

	if old.Annotations[claiimv1.AnnotationRotateToken] != a.Annotations[claiimv1.AnnotationRotateToken] {
		return verdict{what: fmt.Sprintf("agent %s/%s: token rotation requested (%s=%q)", a.Namespace, a.Name,
			claiimv1.AnnotationRotateToken, a.Annotations[claiimv1.AnnotationRotateToken])}, nil
	}
	// What changed besides acceptance and lifecycle?
	sameRest := equality.Semantic.DeepEqual(withoutLifecycle(a.Spec), withoutLifecycle(old.Spec)) &&
		equality.Semantic.DeepEqual(a.Labels, old.Labels) &&
		equality.Semantic.DeepEqual(withoutKeys(a.Annotations, admissionWritten...), withoutKeys(old.Annotations, admissionWritten...))
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
func (w agentWebhook) skillProblem(ctx context.Context, a *claiimv1.Agent) (string, error) {
	ref := a.Spec.SkillRef
	s := &claiimv1.Skill{}
	// Live read: a skill applied together with its agent may not be cached yet.
	if err := w.h.APIReader.Get(ctx, client.ObjectKey{Name: ref.Name}, s); err != nil {
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
	if err := w.h.Reader.List(ctx, grants); err != nil {
		return "", fmt.Errorf("reading grants: %w", err)
	}
	now := w.h.now()
	for i := range grants.Items {
		if g := &grants.Items[i]; g.ActiveAt(now) && g.Covers(s.Name, s.Spec.Org, a.Spec.Org) &&
			w.h.Signer.Verify(attest.Grant(g), g.Status.Attestation) == nil {
			return "", nil
		}
	}
	return fmt.Sprintf("skill %q belongs to org %q, not %q, and no active CrossOrgGrant shares it; use a skill of org %q or have both orgs approve a grant",
		s.Name, s.Spec.Org, a.Spec.Org, a.Spec.Org), nil
}

// admissionWritten are the annotations a person's write does not choose:
// the anchor's acceptance (checked above) and what the mutating webhook
// writes (the stamp, who changed the spec).
var admissionWritten = []string{claiimv1.AnnotationAnchorAccepted, claiimv1.AnnotationAdmitted, claiimv1.AnnotationChangedBy}

func withoutLifecycle(s claiimv1.AgentSpec) claiimv1.AgentSpec { s.Lifecycle = ""; return s }

func withoutKeys(m map[string]string, keys ...string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
