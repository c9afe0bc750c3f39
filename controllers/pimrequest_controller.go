package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// PIMRequestReconciler reports each elevation's state and expires it at
// the exact instant its time is up.
type PIMRequestReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Clock    clock.PassiveClock
	Log      Log
	Signer   *attest.Signer
}

// +kubebuilder:rbac:groups=claiim.io,resources=pimrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=claiim.io,resources=pimrequests/status,verbs=get;update;patch

func (r *PIMRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &claiimv1.PIMRequest{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := p.DeepCopy()
	now := r.Clock.Now()
	s := p.Session(now)
	// An approval counts only as admission checked and signed it: approval
	// annotations that got there any other way elevate nobody.
	forged := false
	if s.Phase == claiimv1.PIMActive || s.Phase == claiimv1.PIMExpired {
		if err := r.Signer.Verify(attest.PIMApproval(p), p.Annotations[claiimv1.AnnotationApprovalAttestation]); err != nil {
			s, forged = claiimv1.PIMSession{Phase: claiimv1.PIMPending, Subject: s.Subject}, true
		}
	}

	st := &p.Status
	st.Phase, st.Requester, st.Subject, st.ApprovedBy = s.Phase, p.Spec.Requester, s.Subject, s.ApprovedBy
	st.ApprovedAt, st.ExpiresAt = nil, nil
	if !s.ApprovedAt.IsZero() {
		at, exp := metav1.NewTime(s.ApprovedAt), metav1.NewTime(s.ExpiresAt)
		st.ApprovedAt, st.ExpiresAt = &at, &exp
	}
	msg := map[claiimv1.PIMPhase]string{
		claiimv1.PIMPending: "waiting for a second approver: kubectl annotate pimrequest " + p.Name + " claiim.io/approve=\"<comment>\"",
		claiimv1.PIMActive:  fmt.Sprintf("%s is elevated, approved by %s, until the session expires", s.Subject, s.ApprovedBy),
		claiimv1.PIMDenied:  fmt.Sprintf("denied by %s; request elevation again with a new PIMRequest", s.ApprovedBy),
		claiimv1.PIMExpired: "the session expired; request elevation again with a new PIMRequest. What was created stays",
		claiimv1.PIMRevoked: fmt.Sprintf("revoked by %s", p.Annotations[claiimv1.AnnotationRevokedBy]),
	}[s.Phase]
	if forged {
		msg = "the approval annotations were not stamped by admission (no valid manager attestation), so this request elevates nobody. " +
			"Have an approver approve it through the apiserver with the CLAIIM webhooks in place"
	}
	st.ObservedGeneration = p.Generation
	setCondition(&st.Conditions, p.Generation, claiimv1.ConditionReady, s.Phase == claiimv1.PIMActive, string(s.Phase), msg)

	if s.Phase == claiimv1.PIMExpired && before.Status.Phase != claiimv1.PIMExpired {
		if err := recordEvent(ctx, r.Log, p.UID, "expired", &chron.Record{Kind: chron.KindPIMExpired, Actor: string(s.Subject),
			Action: "expire:pimrequests", Outcome: chron.OutcomeDeny, Reason: "PIM_EXPIRED",
			Message: fmt.Sprintf("PIM session %s of %s expired (approved by %s)", p.Name, s.Subject, s.ApprovedBy),
			Context: map[string]any{"name": p.Name, "requester": string(p.Spec.Requester)}}); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := patchStatus(ctx, r.Client, before, p, before.Status, p.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching PIMRequest status: %w", err)
	}
	phaseEvent(r.Recorder, p, before.Status.Phase, s.Phase, "Elevation", msg, claiimv1.PIMActive, claiimv1.PIMPending)
	if s.Phase == claiimv1.PIMActive {
		// Wake up exactly at expiry, not by polling.
		return ctrl.Result{RequeueAfter: s.ExpiresAt.Sub(now)}, nil
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches PIMRequests.
func (r *PIMRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&claiimv1.PIMRequest{}).Named("pimrequest").Complete(r)
}
