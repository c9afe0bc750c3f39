package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Admission is how the reconcilers of the control-plane kinds check every
// stored generation against admission's stamp (gate/attest admitted.go):
// an object changed while the webhooks were away (or bypassed) is found,
// reported as condition Admitted=False, a warning event and a Chron
// `admission.bypassed` row, and the gate does not use it until it is
// re-applied under a PIM session.
type Admission struct {
	Keys     attest.Verifier
	Log      Log
	Recorder recorder.EventRecorder
	// History keeps each generation checked (history.go); nil keeps none.
	History *History
	// upgraded is set once objects from before stamps existed have been
	// stamped (admitexisting.go); until then a missing stamp is Unknown.
	upgraded atomic.Bool
}

// NewAdmission checks with keys; with upgraded false, missing stamps are
// not reported until MarkUpgraded.
func NewAdmission(keys attest.Verifier, log Log, rec recorder.EventRecorder, upgraded bool) *Admission {
	a := &Admission{Keys: keys, Log: log, Recorder: rec}
	a.upgraded.Store(upgraded)
	return a
}

// MarkUpgraded: every object has had its chance to be stamped.
func (a *Admission) MarkUpgraded() { a.upgraded.Store(true) }

// Check keeps obj's generation in the history, sets obj's Admitted
// condition in conds and reports a change past admission. It returns an
// error only when Chron could not be written.
func (a *Admission) Check(ctx context.Context, obj client.Object, conds *[]metav1.Condition) error {
	if a == nil {
		return nil
	}
	gen := obj.GetGeneration()
	err := attest.VerifyStamp(a.Keys, obj)
	// An object from before stamps is kept once the upgrade step stamped
	// it, not as a change past admission.
	awaiting := errors.Is(err, attest.ErrNotStamped) && !a.upgraded.Load()
	if !awaiting {
		if herr := a.History.record(ctx, obj, err == nil); herr != nil {
			return herr
		}
	}
	switch {
	case err == nil:
		setCondition(conds, gen, claiimv1.ConditionAdmitted, true, claiimv1.ReasonAdmitted, "the current generation is as admission admitted it")
		return nil
	case awaiting:
		meta.SetStatusCondition(conds, metav1.Condition{Type: claiimv1.ConditionAdmitted, Status: metav1.ConditionUnknown,
			Reason: claiimv1.ReasonAwaitingAdmission, ObservedGeneration: gen,
			Message: "the object predates admission stamps; the manager stamps such objects once, at upgrade"})
		return nil
	}
	kind := kindName(obj)
	msg := fmt.Sprintf("%s %s generation %d was changed without admission (%v): the admission webhooks were bypassed or away, "+
		"so the gate does not use it and denies what depends on it (NOT_ADMITTED). Re-apply it under a PIM session (kubectl apply -f <its manifest>), "+
		"and find who changed it in the apiserver's audit log", kind, objName(obj), gen, err)
	var was metav1.Condition // a copy: setCondition changes the element in place
	if c := meta.FindStatusCondition(*conds, claiimv1.ConditionAdmitted); c != nil {
		was = *c
	}
	setCondition(conds, gen, claiimv1.ConditionAdmitted, false, claiimv1.ReasonChangedPastAdmission, msg)
	// Once per generation and stamp: a status write or a retry is not a
	// new finding, a new stale stamp (or none) is.
	sum := sha256.Sum256([]byte(obj.GetAnnotations()[claiimv1.AnnotationAdmitted]))
	rec := &chron.Record{Kind: chron.KindAdmissionBypassed, Action: "admission:bypassed", Outcome: chron.OutcomeDeny,
		Reason: "CHANGED_PAST_ADMISSION", Message: msg, Org: orgOf(obj),
		Context: map[string]any{"kind": kind, "name": obj.GetName(), "generation": gen}}
	if ns := obj.GetNamespace(); ns != "" {
		rec.Context["namespace"] = ns
	}
	if ag, ok := obj.(*claiimv1.Agent); ok {
		rec.AgentName, rec.AgentNamespace, rec.AgentUID = ag.Name, ag.Namespace, string(ag.UID)
	}
	if err := recordEvent(ctx, a.Log, obj.GetUID(), fmt.Sprintf("bypassed/%d/%s", gen, hex.EncodeToString(sum[:8])), rec); err != nil {
		return err
	}
	if a.Recorder != nil && (was.Status != metav1.ConditionFalse || was.Message != msg) {
		a.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, claiimv1.ReasonChangedPastAdmission, "Admission", "%s", msg)
	}
	return nil
}

func kindName(obj client.Object) string {
	t := fmt.Sprintf("%T", obj)
	return t[strings.LastIndex(t, ".")+1:]
}

func objName(obj client.Object) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// orgOf is the org a control-plane object belongs to, for Chron.
func orgOf(obj client.Object) string {
	switch o := obj.(type) {
	case *claiimv1.AIOrg:
		return o.Name
	case *claiimv1.Skill:
		return string(o.Spec.Org)
	case *claiimv1.Policy:
		return string(o.Spec.Org)
	case *claiimv1.Agent:
		return string(o.Spec.Org)
	case *claiimv1.CrossOrgGrant:
		return string(o.Spec.ReceivingOrg)
	}
	return ""
}
