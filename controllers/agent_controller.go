package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// AgentReconciler runs the agent's phase machine and issues its token.
type AgentReconciler struct {
	client.Client
	// APIReader reads past the cache, which holds only labelled token
	// Secrets: a foreign Secret squatting on the name must be seen.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	GateURL   string
	// Gate is how the manager runs the gate, nil when it doesn't: then no
	// CA is handed out and no namespace is labelled (gate_tls.go).
	Gate  *GateConfig
	Clock clock.PassiveClock
	Log   Log
	// Signer attests the status the gate trusts and the token Secrets.
	Signer *attest.Signer
	// Admission checks each generation against admission's stamp.
	Admission *Admission
}

// +kubebuilder:rbac:groups=claiim.io,resources=agents,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=claiim.io,resources=agents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=claiim.io,resources=crossorggrants,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete

// pinned is the resolved skill version an agent is pinned to.
type pinned struct {
	id, digest string
	// grantExpiry is set when the skill is another org's, used under a
	// grant that ends then.
	grantExpiry *time.Time
}

func (r *AgentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	agent := &claiimv1.Agent{}
	if err := r.Get(ctx, req.NamespacedName, agent); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.labelNamespace(ctx, req.Namespace) // the last one gone?
		}
		return ctrl.Result{}, err
	}
	if err := r.labelNamespace(ctx, agent.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	before := agent.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	// Status is the manager's only if its signature verifies; otherwise
	// someone else wrote it and nothing in it counts (not even a recorded
	// decommissioning: the spec says so too, or it didn't happen).
	trusted := r.Signer.Verify(attest.Agent(agent), agent.Status.Attestation) == nil
	if !trusted {
		if agent.Status.Attestation != "" {
			r.Recorder.Eventf(agent, nil, corev1.EventTypeWarning, "StatusNotAttested", "Reconcile",
				"the agent's status was not written by the manager; it is rewritten from the manager's records. Check who may write agents/status")
		}
		agent.Status.Phase = ""
	}

	pin, pendReason, pendMsg, err := r.resolve(ctx, agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	agent.Status.SkillVersionID, agent.Status.SkillDigest = "", ""
	if pin != nil {
		agent.Status.SkillVersionID, agent.Status.SkillDigest = pin.id, pin.digest
	}
	agent.Status.PreviousSkillVersion = previousVersion(agent, &before.Status, trusted, pin, now.Time)

	// Decommissioned is terminal: the recorded phase wins over the spec.
	var tok tokenOutcome
	if agent.Decommissioned() {
		tok, err = r.revokeToken(ctx, agent, trusted, now)
	} else {
		tok, err = r.ensureToken(ctx, agent, trusted, now)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	setCondition(&agent.Status.Conditions, agent.Generation, claiimv1.ConditionTokenIssued, tok.ok, tok.reason, tok.msg)

	phase, reason, msg := agent.ResolvedPhase(pendReason, pendMsg)
	if phase == claiimv1.AgentDecommissioned && agent.Status.DecommissionedAt == nil {
		agent.Status.DecommissionedAt = &now
	}
	agent.Status.Phase = phase
	agent.Status.ObservedGeneration = agent.Generation
	setCondition(&agent.Status.Conditions, agent.Generation, claiimv1.ConditionReady, phase == claiimv1.AgentActive, reason, msg)
	if err := r.Admission.Check(ctx, agent, &agent.Status.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	agent.Status.Attestation = r.Signer.Sign(attest.Agent(agent))

	if err := r.recordChanges(ctx, before, agent, tok); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, before, agent, before.Status, agent.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching Agent status: %w", err)
	}
	var res ctrl.Result
	if pin != nil && pin.grantExpiry != nil && phase != claiimv1.AgentDecommissioned {
		// Re-resolve the moment the grant the skill is used under ends.
		res.RequeueAfter = pin.grantExpiry.Sub(r.Clock.Now())
	}
	if p := agent.Status.PreviousSkillVersion; p != nil {
		// Drop the previous version from status when its window ends (the
		// gate stops accepting it then by its own clock anyway).
		if d := p.Until.Sub(r.Clock.Now()); res.RequeueAfter == 0 || d < res.RequeueAfter {
			res.RequeueAfter = d
		}
	}
	phaseEvent(r.Recorder, agent, before.Status.Phase, phase, "Lifecycle", msg, claiimv1.AgentActive)
	return res, nil
}

// recordChanges writes lifecycle and token events to Chron before the
// status that reports them, so no change goes unrecorded.
func (r *AgentReconciler) recordChanges(ctx context.Context, before, a *claiimv1.Agent, tok tokenOutcome) error {
	base := func(kind chron.Kind, reason, msg string) *chron.Record {
		return &chron.Record{Kind: kind, Action: string(kind), Outcome: chron.OutcomeAllow, Reason: reason, Message: msg,
			AgentName: a.Name, AgentNamespace: a.Namespace, AgentUID: string(a.UID), Org: string(a.Spec.Org),
			Anchor: string(a.Spec.AccountabilityAnchor), SkillVersionID: a.Status.SkillVersionID, SkillDigest: a.Status.SkillDigest}
	}
	if before.Status.Phase != a.Status.Phase {
		msg := fmt.Sprintf("agent %s/%s: %s -> %s", a.Namespace, a.Name, orNone(string(before.Status.Phase)), a.Status.Phase)
		if err := recordEvent(ctx, r.Log, a.UID, fmt.Sprintf("phase/%d/%s", a.Generation, a.Status.Phase),
			base(chron.KindAgentLifecycle, "AGENT_"+strings.ToUpper(string(a.Status.Phase)), msg)); err != nil {
			return err
		}
	}
	if tok.refused != "" {
		rec := base(chron.KindTokenRefused, "TOKEN_SECRET_REFUSED", tok.msg)
		rec.Outcome = chron.OutcomeDeny
		if err := recordEvent(ctx, r.Log, a.UID, "token-refused/"+tok.refused, rec); err != nil {
			return err
		}
	}
	t, prev := a.Status.Token, before.Status.Token
	if t == nil {
		return nil
	}
	if t.Hash != "" && (prev == nil || prev.ID != t.ID || prev.Hash == "") {
		kind, reason, msg := chron.KindTokenIssued, "TOKEN_ISSUED", fmt.Sprintf("token %s issued into Secret %s/%s", t.ID, a.Namespace, t.SecretName)
		if prev != nil && prev.ID != "" && prev.ID != t.ID {
			kind, reason = chron.KindTokenRotated, "TOKEN_ROTATED"
			msg = fmt.Sprintf("token %s replaced by token %s in Secret %s/%s (rotation %q); the old token no longer authenticates",
				prev.ID, t.ID, a.Namespace, t.SecretName, a.Annotations[claiimv1.AnnotationTokenRotated])
			if tok.upgraded {
				reason, msg = "TOKEN_ROTATED_ON_UPGRADE", tok.msg
			}
		}
		if err := recordEvent(ctx, r.Log, a.UID, "token-issued/"+t.ID, base(kind, reason, msg)); err != nil {
			return err
		}
	}
	if t.RevokedAt != nil && (prev == nil || prev.RevokedAt == nil) {
		if err := recordEvent(ctx, r.Log, a.UID, fmt.Sprintf("token-revoked/%s/%s", t.ID, a.Annotations[claiimv1.AnnotationTokenEpoch]),
			base(chron.KindTokenRevoked, "TOKEN_REVOKED", tok.msg)); err != nil {
			return err
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(new)"
	}
	return s
}

// previousVersion is the skill version the gate still accepts after a
// re-pin: the one the manager's own (signed) status last recorded, for
// spec.repinGracePeriodSeconds from the moment the manager saw the re-pin.
// Nothing is carried over from a status the manager did not sign, nor past
// its window, nor to an agent that is not pinned to anything now.
func previousVersion(a *claiimv1.Agent, old *claiimv1.AgentStatus, trusted bool, pin *pinned, now time.Time) *claiimv1.PreviousSkillVersion {
	grace := a.RepinGracePeriod()
	if !trusted || pin == nil || grace <= 0 || a.LifecyclePhase() == claiimv1.AgentDecommissioned {
		return nil
	}
	if old.SkillVersionID != "" && old.SkillVersionID != pin.id {
		name, v, ok := claiimv1.ParseSkillVersionID(old.SkillVersionID)
		if !ok {
			return nil
		}
		return &claiimv1.PreviousSkillVersion{Name: name, Version: v, ID: old.SkillVersionID, Digest: old.SkillDigest, Until: metav1.NewTime(now.Add(grace).Truncate(time.Second))}
	}
	if p := old.PreviousSkillVersion; p != nil && p.ID != pin.id && now.Before(p.Until.Time) {
		prev := p.DeepCopy()
		if limit := now.Add(grace); limit.Before(prev.Until.Time) { // the window was shortened since
			prev.Until = metav1.NewTime(limit)
		}
		return prev
	}
	return nil
}

// resolve finds the pinned skill version. A non-empty reason says why the
// agent must stay Pending.
func (r *AgentReconciler) resolve(ctx context.Context, a *claiimv1.Agent) (*pinned, string, string, error) {
	if reason, msg, err := orgProblem(ctx, r.Client, "Agent", string(a.Spec.Org)); err != nil || reason != "" {
		return nil, reason, msg, err
	}
	ref := a.Spec.SkillRef
	skill := &claiimv1.Skill{}
	if err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, skill); apierrors.IsNotFound(err) {
		skill = nil
	} else if err != nil {
		return nil, "", "", fmt.Errorf("reading Skill %q: %w", ref.Name, err)
	}
	var grantExpiry *time.Time
	if skill != nil && skill.Spec.Org != a.Spec.Org {
		exp, err := r.activeGrant(ctx, skill, a.Spec.Org)
		if err != nil {
			return nil, "", "", err
		}
		grantExpiry = exp
	}
	if reason, msg := a.PinProblem(skill, grantExpiry != nil); reason != "" {
		return nil, reason, msg, nil
	}
	id, d, _ := skill.VersionID(ref.Version) // published: PinProblem said so
	return &pinned{id: id, digest: d, grantExpiry: grantExpiry}, "", "", nil
}

// activeGrant returns the expiry of the longest-lived active grant that
// lets agents of org use skill, or nil if there is none.
func (r *AgentReconciler) activeGrant(ctx context.Context, skill *claiimv1.Skill, org claiimv1.OrgName) (*time.Time, error) {
	grants := &claiimv1.CrossOrgGrantList{}
	if err := r.List(ctx, grants, client.MatchingFields{indexReceivingOrg: string(org)}); err != nil {
		return nil, fmt.Errorf("listing CrossOrgGrants: %w", err)
	}
	now := r.Clock.Now()
	var best *time.Time
	for i := range grants.Items {
		g := &grants.Items[i]
		if !g.ActiveAt(now) || !g.Covers(skill.Name, skill.Spec.Org, org) || r.Signer.Verify(attest.Grant(g), g.Status.Attestation) != nil {
			continue
		}
		if t := g.Status.ExpiresAt.Time; best == nil || t.After(*best) {
			best = &t
		}
	}
	return best, nil
}

// SetupWithManager watches Agents, their token Secrets, and the skills
// and orgs they depend on.
func (r *AgentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&claiimv1.Agent{}).
		Owns(&corev1.Secret{}).
		Watches(&claiimv1.Skill{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return listRequests(ctx, r.Client, &claiimv1.AgentList{}, client.MatchingFields{indexSkillName: o.GetName()})
		})).
		Watches(&claiimv1.AIOrg{}, handler.EnqueueRequestsFromMapFunc(byOrg(r.Client, func() client.ObjectList { return &claiimv1.AgentList{} }))).
		Watches(&claiimv1.CrossOrgGrant{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return listRequests(ctx, r.Client, &claiimv1.AgentList{}, client.MatchingFields{indexOrg: string(o.(*claiimv1.CrossOrgGrant).Spec.ReceivingOrg)})
		})).
		// A new gate CA bundle goes into every token Secret.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if r.Gate == nil || o.GetName() != GateCAConfigMap || o.GetNamespace() != r.Gate.Namespace {
				return nil
			}
			return listRequests(ctx, r.Client, &claiimv1.AgentList{})
		})).
		Named("agent").
		Complete(r)
}
