package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// CrossOrgGrantReconciler activates a grant once both sides approved,
// expires it on time and reports revocation.
type CrossOrgGrantReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Clock    clock.PassiveClock
	Log      Log
	Signer   *attest.Signer
	// Admission checks each generation against admission's stamp.
	Admission *Admission
}

// +kubebuilder:rbac:groups=claiim.io,resources=crossorggrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=claiim.io,resources=crossorggrants/status,verbs=get;update;patch

func (r *CrossOrgGrantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &claiimv1.CrossOrgGrant{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := g.DeepCopy()
	now := r.Clock.Now()
	st := &g.Status
	if r.Signer.Verify(attest.Grant(g), st.Attestation) != nil {
		// Not the manager's status: its activation time counts for nothing.
		st.ActivatedAt = nil
		if st.Attestation != "" {
			r.Recorder.Eventf(g, nil, corev1.EventTypeWarning, "StatusNotAttested", "Reconcile",
				"the grant's status was not written by the manager; it is rewritten from the manager's records. Check who may write crossorggrants/status")
		}
	}
	st.GrantingApprovedBy = claiimv1.Username(g.Annotations[claiimv1.AnnotationGrantingApprovedBy])
	st.ReceivingApprovedBy = claiimv1.Username(g.Annotations[claiimv1.AnnotationReceivingApprovedBy])
	msg := g.ResolveStatus(now)
	st.ObservedGeneration = g.Generation
	setCondition(&st.Conditions, g.Generation, claiimv1.ConditionReady, st.Phase == claiimv1.GrantActive, string(st.Phase), msg)
	if err := r.Admission.Check(ctx, g, &st.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	st.Attestation = r.Signer.Sign(attest.Grant(g))

	if before.Status.Phase != st.Phase && st.Phase != claiimv1.GrantPending {
		outcome := chron.OutcomeDeny
		if st.Phase == claiimv1.GrantActive {
			outcome = chron.OutcomeAllow
		}
		if err := recordEvent(ctx, r.Log, g.UID, "grant/"+string(st.Phase), &chron.Record{Kind: chron.GrantKind(string(st.Phase)),
			Action: "grant:" + strings.ToLower(string(st.Phase)), Outcome: outcome, Reason: "GRANT_" + strings.ToUpper(string(st.Phase)), Org: string(g.Spec.ReceivingOrg),
			Message: fmt.Sprintf("grant %s (%s -> %s, skills %v): %s", g.Name, g.Spec.GrantingOrg, g.Spec.ReceivingOrg, g.Spec.Skills, msg)}); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := patchStatus(ctx, r.Client, before, g, before.Status, g.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching CrossOrgGrant status: %w", err)
	}
	phaseEvent(r.Recorder, g, before.Status.Phase, st.Phase, "Grant", msg, claiimv1.GrantActive, claiimv1.GrantPending)
	if st.Phase == claiimv1.GrantActive && st.ExpiresAt != nil {
		return ctrl.Result{RequeueAfter: st.ExpiresAt.Sub(now)}, nil
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches CrossOrgGrants.
func (r *CrossOrgGrantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&claiimv1.CrossOrgGrant{}).Named("crossorggrant").Complete(r)
}
