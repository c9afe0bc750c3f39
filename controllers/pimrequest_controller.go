package controllers

import (
	"context"
	"fmt"
	"time"

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
	// PendingTTL is how long a request may wait for its approvals before
	// it lapses (--pim-pending-ttl).
	PendingTTL time.Duration
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
	s := p.SessionWithin(now, r.PendingTTL)
	// An approval counts only as admission checked and signed it: approval
	// annotations that got there any other way elevate nobody.
	forged := false
	if (s.Phase == claiimv1.PIMActive || s.Phase == claiimv1.PIMExpired) && !s.PendingExpired {
		if err := attest.PIMApproved(p, r.Signer); err != nil {
			s, forged = claiimv1.PIMSession{Phase: claiimv1.PIMPending, Subject: s.Subject}, true
			if d := p.PendingDeadline(r.PendingTTL); !d.IsZero() && !now.Before(d) {
				s.Phase, s.PendingExpired = claiimv1.PIMExpired, true
			}
		}
	}
	approvals := attest.PIMApprovers(p, r.Signer)

	st := &p.Status
	st.Phase, st.Requester, st.Subject, st.ApprovedBy = s.Phase, p.Spec.Requester, s.Subject, s.ApprovedBy
	st.ApprovedAt, st.ExpiresAt, st.PendingExpiresAt, st.Approvals = nil, nil, nil, nil
	if !s.ApprovedAt.IsZero() {
		at, exp := metav1.NewTime(s.ApprovedAt), metav1.NewTime(s.ExpiresAt)
		st.ApprovedAt, st.ExpiresAt = &at, &exp
	}
	if d := p.PendingDeadline(r.PendingTTL); !d.IsZero() && (s.Phase == claiimv1.PIMPending || s.PendingExpired) {
		t := metav1.NewTime(d)
		st.PendingExpiresAt = &t
	}
	for _, a := range approvals {
		if at, err := time.Parse(time.RFC3339, a.At); err == nil {
			st.Approvals = append(st.Approvals, claiimv1.PIMApproval{By: a.By, At: metav1.NewTime(at)})
		}
	}
	msg, reason := r.message(p, s, len(approvals), forged), string(s.Phase)
	if s.PendingExpired {
		reason = claiimv1.ReasonPendingExpired
	}
	st.ObservedGeneration = p.Generation
	setCondition(&st.Conditions, p.Generation, claiimv1.ConditionReady, s.Phase == claiimv1.PIMActive, reason, msg)

	if err := r.recordExpiry(ctx, p, before, s, len(approvals)); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, before, p, before.Status, p.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching PIMRequest status: %w", err)
	}
	phaseEvent(r.Recorder, p, before.Status.Phase, s.Phase, "Elevation", msg, claiimv1.PIMActive, claiimv1.PIMPending)
	// Wake up exactly at expiry (of the session, or of the wait for its
	// approvals), not by polling.
	switch {
	case s.Phase == claiimv1.PIMActive:
		return ctrl.Result{RequeueAfter: s.ExpiresAt.Sub(now)}, nil
	case s.Phase == claiimv1.PIMPending && st.PendingExpiresAt != nil:
		return ctrl.Result{RequeueAfter: st.PendingExpiresAt.Sub(now)}, nil
	}
	return ctrl.Result{}, nil
}

// message is the Ready condition's message: what the phase means and
// what a person does next.
func (r *PIMRequestReconciler) message(p *claiimv1.PIMRequest, s claiimv1.PIMSession, approvals int, forged bool) string {
	if forged && !s.PendingExpired {
		return "the approval annotations were not stamped by admission (no valid manager attestation), so this request elevates nobody. " +
			"Have an approver approve it through the apiserver with the CLAIIM webhooks in place"
	}
	pending := "waiting for a second approver: kubectl annotate pimrequest " + p.Name + " claiim.io/approve=\"<comment>\""
	if p.Required() > 1 {
		pending = fmt.Sprintf("%d of %d approvals from distinct approvers other than the requester; waiting for another: kubectl annotate pimrequest %s claiim.io/approve=\"<comment>\"",
			approvals, p.Required(), p.Name)
	}
	if s.PendingExpired {
		return fmt.Sprintf("PIM_PENDING_EXPIRED: the request waited %s for its approvals (%d of %d) and expired; it can no longer be approved. "+
			"Request elevation again with a new PIMRequest", r.PendingTTL, approvals, p.Required())
	}
	return map[claiimv1.PIMPhase]string{
		claiimv1.PIMPending: pending,
		claiimv1.PIMActive:  fmt.Sprintf("%s is elevated, approved by %s, until the session expires", s.Subject, s.ApprovedBy),
		claiimv1.PIMDenied:  fmt.Sprintf("denied by %s; request elevation again with a new PIMRequest", s.ApprovedBy),
		claiimv1.PIMExpired: "the session expired; request elevation again with a new PIMRequest. What was created stays",
		claiimv1.PIMRevoked: fmt.Sprintf("revoked by %s", p.Annotations[claiimv1.AnnotationRevokedBy]),
	}[s.Phase]
}

// recordExpiry writes the Chron row of a move to Expired, once: of a
// session whose time is up (PIM_EXPIRED), or of a request nobody approved
// in time (PIM_PENDING_EXPIRED).
func (r *PIMRequestReconciler) recordExpiry(ctx context.Context, p, before *claiimv1.PIMRequest, s claiimv1.PIMSession, approvals int) error {
	if s.Phase != claiimv1.PIMExpired || before.Status.Phase == claiimv1.PIMExpired {
		return nil
	}
	ctxt := map[string]any{"name": p.Name, "requester": string(p.Spec.Requester)}
	if s.PendingExpired {
		ctxt["approvals"], ctxt["approvals_required"] = approvals, p.Required()
		return recordEvent(ctx, r.Log, p.UID, "pending-expired", &chron.Record{Kind: chron.KindPIMExpired, Actor: string(p.Spec.Requester),
			Action: "expire:pimrequests", Outcome: chron.OutcomeDeny, Reason: "PIM_PENDING_EXPIRED", Context: ctxt,
			Message: fmt.Sprintf("PIM request %s of %s for %s expired unapproved after waiting %s (%d of %d approvals); it elevated nobody",
				p.Name, p.Spec.Requester, s.Subject, r.PendingTTL, approvals, p.Required())})
	}
	return recordEvent(ctx, r.Log, p.UID, "expired", &chron.Record{Kind: chron.KindPIMExpired, Actor: string(s.Subject),
		Action: "expire:pimrequests", Outcome: chron.OutcomeDeny, Reason: "PIM_EXPIRED", Context: ctxt,
		Message: fmt.Sprintf("PIM session %s of %s expired (approved by %s)", p.Name, s.Subject, s.ApprovedBy)})
}

// SetupWithManager watches PIMRequests.
func (r *PIMRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&claiimv1.PIMRequest{}).Named("pimrequest").Complete(r)
}
