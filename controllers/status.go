package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// setCondition sets a condition stamped with the object's generation.
// Messages must be deterministic so conditions don't flap.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// patchStatus writes obj's status only when it differs from before's.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object, oldStatus, newStatus any) error {
	if equality.Semantic.DeepEqual(oldStatus, newStatus) {
		return nil
	}
	return c.Status().Patch(ctx, obj, client.MergeFrom(before))
}

// readyReason returns the Ready condition of conds: status, reason, message.
func readyReason(conds []metav1.Condition) (bool, string, string) {
	c := meta.FindStatusCondition(conds, "Ready")
	if c == nil {
		return false, "", ""
	}
	return c.Status == metav1.ConditionTrue, c.Reason, c.Message
}

// readyEvent records an event when the Ready condition changed status or
// reason since before, so events mark real transitions only.
func readyEvent(rec recorder.EventRecorder, obj runtime.Object, before []metav1.Condition, ok bool, reason, action, msg string) {
	if wasOK, oldReason, _ := readyReason(before); wasOK == ok && oldReason == reason {
		return
	}
	typ := corev1.EventTypeNormal
	if !ok {
		typ = corev1.EventTypeWarning
	}
	rec.Eventf(obj, nil, typ, reason, action, "%s", msg)
}

// phaseEvent records an event when a phase changed, a warning when the
// new phase is not one of the healthy ones.
func phaseEvent[P ~string](rec recorder.EventRecorder, obj runtime.Object, from, to P, action, msg string, healthy ...P) {
	if from == to {
		return
	}
	typ := corev1.EventTypeWarning
	for _, h := range healthy {
		if to == h {
			typ = corev1.EventTypeNormal
		}
	}
	rec.Eventf(obj, nil, typ, string(to), action, "%s", msg)
}
