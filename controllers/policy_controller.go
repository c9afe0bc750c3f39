package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

// PolicyReconciler compiles each policy's rules exactly as the gate will,
// so a rule the gate could not enforce is reported here first.
type PolicyReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	// Admission checks each generation against admission's stamp.
	Admission *Admission
}

// +kubebuilder:rbac:groups=claiim.io,resources=policies,verbs=get;list;watch
// +kubebuilder:rbac:groups=claiim.io,resources=policies/status,verbs=get;update;patch

func (r *PolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pol := &claiimv1.Policy{}
	if err := r.Get(ctx, req.NamespacedName, pol); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pol.DeepCopy()

	var reason, msg string
	compiled, cerr := decide.CompilePolicy(pol)
	switch {
	case cerr != nil:
		reason, msg = claiimv1.ReasonInvalidRule, cerr.Error()
		pol.Status.Rules = 0
	case pol.Spec.Org != "":
		var err error
		if reason, msg, err = orgProblem(ctx, r.Client, "Policy", string(pol.Spec.Org)); err != nil {
			return ctrl.Result{}, err
		}
	}
	if cerr == nil {
		pol.Status.Rules = int32(len(compiled.Rules))
	}
	ok := reason == ""
	if ok {
		reason = claiimv1.ReasonReconciled
		scope := "every org"
		if pol.Spec.Org != "" {
			scope = fmt.Sprintf("org %q and its descendants", pol.Spec.Org)
		}
		msg = fmt.Sprintf("%d rule(s) compiled; enforced in %s", len(compiled.Rules), scope)
	}
	pol.Status.ObservedGeneration = pol.Generation
	setCondition(&pol.Status.Conditions, pol.Generation, claiimv1.ConditionReady, ok, reason, msg)
	if err := r.Admission.Check(ctx, pol, &pol.Status.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, before, pol, before.Status, pol.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching Policy status: %w", err)
	}
	readyEvent(r.Recorder, pol, before.Status.Conditions, ok, reason, "Compile", msg)
	return ctrl.Result{}, nil
}

// SetupWithManager watches Policies and the AIOrgs they are scoped to.
func (r *PolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&claiimv1.Policy{}).
		Watches(&claiimv1.AIOrg{}, handler.EnqueueRequestsFromMapFunc(byOrg(r.Client, func() client.ObjectList { return &claiimv1.PolicyList{} }))).
		Named("policy").
		Complete(r)
}
