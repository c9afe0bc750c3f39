package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/token"
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
}

// +kubebuilder:rbac:groups=claiim.io,resources=agents,verbs=get;list;watch
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

	pin, pendReason, pendMsg, err := r.resolve(ctx, agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	agent.Status.SkillVersionID, agent.Status.SkillDigest = "", ""
	if pin != nil {
		agent.Status.SkillVersionID, agent.Status.SkillDigest = pin.id, pin.digest
	}

	// Decommissioned is terminal: the recorded phase wins over the spec.
	var tokOK bool
	var tokReason, tokMsg string
	if agent.Decommissioned() {
		tokOK, tokReason, tokMsg, err = r.revokeToken(ctx, agent, now)
	} else {
		tokOK, tokReason, tokMsg, err = r.ensureToken(ctx, agent, now)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	setCondition(&agent.Status.Conditions, agent.Generation, claiimv1.ConditionTokenIssued, tokOK, tokReason, tokMsg)

	phase, reason, msg := agentPhase(agent, pendReason, pendMsg)
	if phase == claiimv1.AgentDecommissioned && agent.Status.DecommissionedAt == nil {
		agent.Status.DecommissionedAt = &now
	}
	agent.Status.Phase = phase
	agent.Status.ObservedGeneration = agent.Generation
	setCondition(&agent.Status.Conditions, agent.Generation, claiimv1.ConditionReady, phase == claiimv1.AgentActive, reason, msg)

	if err := r.recordChanges(ctx, before, agent); err != nil {
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
	phaseEvent(r.Recorder, agent, before.Status.Phase, phase, "Lifecycle", msg, claiimv1.AgentActive)
	return res, nil
}

// recordChanges writes lifecycle and token events to Chron before the
// status that reports them, so no change goes unrecorded.
func (r *AgentReconciler) recordChanges(ctx context.Context, before, a *claiimv1.Agent) error {
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
	if t := a.Status.Token; t != nil {
		if before.Status.Token == nil {
			if err := recordEvent(ctx, r.Log, a.UID, "token-issued/"+t.ID,
				base(chron.KindTokenIssued, "TOKEN_ISSUED", fmt.Sprintf("token %s issued into Secret %s/%s", t.ID, a.Namespace, t.SecretName))); err != nil {
				return err
			}
		}
		if t.RevokedAt != nil && (before.Status.Token == nil || before.Status.Token.RevokedAt == nil) {
			if err := recordEvent(ctx, r.Log, a.UID, "token-revoked/"+t.ID,
				base(chron.KindTokenRevoked, "TOKEN_REVOKED", fmt.Sprintf("token %s revoked for good", t.ID))); err != nil {
				return err
			}
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

// agentPhase decides the phase: the agent's own lifecycle phase, with
// Pending in place of Inactive or Active while a reference is missing (a
// person's explicit decommission or suspension shows over it). It must be
// called before the status phase is overwritten: a recorded
// decommissioning is terminal.
func agentPhase(a *claiimv1.Agent, pendReason, pendMsg string) (claiimv1.AgentPhase, string, string) {
	switch p := a.LifecyclePhase(); {
	case p == claiimv1.AgentDecommissioned:
		return claiimv1.AgentDecommissioned, claiimv1.ReasonDecommissioned,
			"the agent is decommissioned and its token revoked for good; its Chron trail is kept. Provision a new agent to act again"
	case p == claiimv1.AgentSuspended:
		return claiimv1.AgentSuspended, claiimv1.ReasonSuspended,
			"the agent is suspended: the gate denies every action until spec.lifecycle is set back to Active"
	case pendReason != "":
		return claiimv1.AgentPending, pendReason, pendMsg
	case p == claiimv1.AgentInactive:
		return claiimv1.AgentInactive, claiimv1.ReasonAnchorNotAccepted, fmt.Sprintf(
			"waiting for the accountability anchor %q to accept the assignment: they annotate the agent with %s=%s",
			a.Spec.AccountabilityAnchor, claiimv1.AnnotationAnchorAccepted, a.Spec.AccountabilityAnchor)
	default:
		return claiimv1.AgentActive, claiimv1.ReasonReconciled, fmt.Sprintf(
			"active on skill %s version %d (%s), accountable: %s",
			a.Spec.SkillRef.Name, a.Spec.SkillRef.Version, a.Status.SkillVersionID, a.Spec.AccountabilityAnchor)
	}
}

// resolve finds the pinned skill version. A non-empty reason says why the
// agent must stay Pending.
func (r *AgentReconciler) resolve(ctx context.Context, a *claiimv1.Agent) (*pinned, string, string, error) {
	if reason, msg, err := orgProblem(ctx, r.Client, "Agent", string(a.Spec.Org)); err != nil || reason != "" {
		return nil, reason, msg, err
	}
	ref := a.Spec.SkillRef
	skill := &claiimv1.Skill{}
	if err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, skill); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, claiimv1.ReasonSkillNotFound, fmt.Sprintf("Skill %q does not exist; create it or point spec.skillRef at an existing skill", ref.Name), nil
		}
		return nil, "", "", fmt.Errorf("reading Skill %q: %w", ref.Name, err)
	}
	var grantExpiry *time.Time
	if skill.Spec.Org != a.Spec.Org {
		exp, err := r.activeGrant(ctx, skill, a.Spec.Org)
		if err != nil {
			return nil, "", "", err
		}
		if exp == nil {
			return nil, claiimv1.ReasonSkillOrgMismatch, fmt.Sprintf(
				"Skill %q belongs to org %q, not %q; use a skill of the agent's own org, or have both orgs approve a CrossOrgGrant",
				ref.Name, skill.Spec.Org, a.Spec.Org), nil
		}
		grantExpiry = exp
	}
	v := skill.Version(ref.Version)
	if v == nil {
		return nil, claiimv1.ReasonSkillVersionNotFound, fmt.Sprintf(
			"Skill %q has no version %d (it has versions 1 to %d); pin a published version",
			ref.Name, ref.Version, len(skill.Spec.Versions)), nil
	}
	d := v.Digest()
	return &pinned{id: claiimv1.SkillVersionID(skill.Name, v.Version, d), digest: d, grantExpiry: grantExpiry}, "", "", nil
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
		if !g.ActiveAt(now) || !g.Covers(skill.Name, skill.Spec.Org, org) {
			continue
		}
		if t := g.Status.ExpiresAt.Time; best == nil || t.After(*best) {
			best = &t
		}
	}
	return best, nil
}

// TokenSecretName is the Secret that holds an agent's token.
func TokenSecretName(agent string) string {
	const suffix = "-claiim-token"
	if len(agent)+len(suffix) <= 253 {
		return agent + suffix
	}
	sum := sha256.Sum256([]byte(agent))
	return agent[:200] + "-" + hex.EncodeToString(sum[:4]) + suffix
}

// ensureToken issues the token once and never rewrites it. If the Secret
// was created but the status write was lost, the token is adopted from the
// Secret rather than issued twice.
func (r *AgentReconciler) ensureToken(ctx context.Context, a *claiimv1.Agent, now metav1.Time) (bool, string, string, error) {
	name := TokenSecretName(a.Name)
	sec, err := r.tokenSecret(ctx, a.Namespace, name)
	if err != nil {
		return false, "", "", err
	}
	ref := fmt.Sprintf("%s/%s", a.Namespace, name)
	want, err := r.gateKeys(ctx)
	if err != nil {
		return false, "", "", err
	}

	if a.Status.Token == nil {
		if sec != nil {
			if !metav1.IsControlledBy(sec, a) {
				return false, claiimv1.ReasonTokenSecretConflict, fmt.Sprintf("Secret %s exists and does not belong to this agent; delete or rename it so the token can be issued", ref), nil
			}
			tok := string(sec.Data[claiimv1.SecretKeyAgentToken])
			id, ok := token.ID(tok)
			if !ok {
				return false, claiimv1.ReasonTokenSecretConflict, fmt.Sprintf("Secret %s holds no valid %s; delete it so a token can be issued", ref, claiimv1.SecretKeyAgentToken), nil
			}
			issued := sec.CreationTimestamp
			a.Status.Token = &claiimv1.AgentToken{ID: id, Hash: token.Hash(tok), SecretName: name, IssuedAt: &issued}
		} else {
			tok, id, hash := token.New()
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name: name, Namespace: a.Namespace,
					Labels: map[string]string{claiimv1.LabelAgentToken: "true", claiimv1.LabelAgentName: a.Name},
				},
				Type: corev1.SecretTypeOpaque,
				Data: map[string][]byte{
					claiimv1.SecretKeyAgentToken:     []byte(tok),
					claiimv1.SecretKeySkillVersionID: []byte(a.Status.SkillVersionID),
				},
			}
			for k, v := range want {
				sec.Data[k] = []byte(v)
			}
			if err := controllerutil.SetControllerReference(a, sec, r.Scheme()); err != nil {
				return false, "", "", fmt.Errorf("owning token Secret: %w", err)
			}
			ctrl.LoggerFrom(ctx).Info("issuing agent token", "secret", ref, "tokenID", id)
			if err := r.Create(ctx, sec); err != nil {
				return false, "", "", fmt.Errorf("creating token Secret %s: %w", ref, err)
			}
			a.Status.Token = &claiimv1.AgentToken{ID: id, Hash: hash, SecretName: name, IssuedAt: &now}
			r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, claiimv1.ReasonTokenIssued, "IssueToken", "token %s issued into Secret %s", id, ref)
		}
	}

	t := a.Status.Token
	switch {
	case sec == nil:
		return false, claiimv1.ReasonTokenSecretMissing, fmt.Sprintf(
			"Secret %s holding token %s was deleted; the token still works wherever it was copied. Decommission the agent to revoke it", ref, t.ID), nil
	case !token.Matches(string(sec.Data[claiimv1.SecretKeyAgentToken]), t.Hash):
		return false, claiimv1.ReasonTokenSecretConflict, fmt.Sprintf(
			"the token in Secret %s was changed and will not authenticate; only token %s is valid", ref, t.ID), nil
	}
	// The non-secret keys follow the agent (a re-pinned skill version, a
	// moved gate, a new gate CA); the token itself is never rewritten.
	if a.Status.SkillVersionID != "" {
		want[claiimv1.SecretKeySkillVersionID] = a.Status.SkillVersionID
	}
	patch := client.MergeFrom(sec.DeepCopy())
	changed := false
	for k, v := range want {
		if string(sec.Data[k]) != v {
			sec.Data[k] = []byte(v)
			changed = true
		}
	}
	if changed {
		if err := r.Patch(ctx, sec, patch); err != nil {
			return false, "", "", fmt.Errorf("updating token Secret %s: %w", ref, err)
		}
	}
	return true, claiimv1.ReasonTokenIssued, fmt.Sprintf("token %s is in Secret %s", t.ID, ref), nil
}

// revokeToken revokes the token for good: the hash is dropped from status
// (the gate can no longer match it) and the Secret is deleted.
func (r *AgentReconciler) revokeToken(ctx context.Context, a *claiimv1.Agent, now metav1.Time) (bool, string, string, error) {
	name := TokenSecretName(a.Name)
	sec, err := r.tokenSecret(ctx, a.Namespace, name)
	if err != nil {
		return false, "", "", err
	}
	if sec != nil && metav1.IsControlledBy(sec, a) {
		if err := r.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
			return false, "", "", fmt.Errorf("deleting token Secret %s/%s: %w", a.Namespace, name, err)
		}
	}
	t := a.Status.Token
	if t == nil {
		return false, claiimv1.ReasonTokenRevoked, "no token was ever issued; the agent is decommissioned", nil
	}
	if t.RevokedAt == nil {
		t.Hash = ""
		t.RevokedAt = &now
		r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, claiimv1.ReasonTokenRevoked, "RevokeToken", "token %s revoked for good", t.ID)
	}
	return false, claiimv1.ReasonTokenRevoked, fmt.Sprintf("token %s is revoked for good", t.ID), nil
}

// tokenSecret reads the agent's token Secret, or nil if there is none.
func (r *AgentReconciler) tokenSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	sec := &corev1.Secret{}
	err := r.Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		// The cache sees only labelled Secrets; ask the apiserver before
		// concluding the name is free.
		err = r.APIReader.Get(ctx, key, sec)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading token Secret %s/%s: %w", ns, name, err)
	}
	return sec, nil
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
