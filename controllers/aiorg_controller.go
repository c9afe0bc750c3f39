package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// AIOrgReconciler resolves each org's path from the root of the tree.
type AIOrgReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	// Admission checks each generation against admission's stamp.
	Admission *Admission
}

// +kubebuilder:rbac:groups=claiim.io,resources=aiorgs,verbs=get;list;watch
// +kubebuilder:rbac:groups=claiim.io,resources=aiorgs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

func (r *AIOrgReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	org := &claiimv1.AIOrg{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := org.DeepCopy()

	path, reason, msg, err := r.resolve(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	ok := reason == claiimv1.ReasonReconciled
	if ok {
		org.Status.Path = strings.Join(path, "/")
		org.Status.Depth = int32(len(path) - 1)
	} else {
		org.Status.Path, org.Status.Depth = "", 0
	}
	org.Status.ObservedGeneration = org.Generation
	setCondition(&org.Status.Conditions, org.Generation, claiimv1.ConditionReady, ok, reason, msg)
	if err := r.Admission.Check(ctx, org, &org.Status.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, before, org, before.Status, org.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching AIOrg status: %w", err)
	}
	readyEvent(r.Recorder, org, before.Status.Conditions, ok, reason, "Resolve", msg)
	return ctrl.Result{}, nil
}

// resolve walks from org up to its root (claiimv1.OrgPath, the walk the
// gate does too) and says in words what stops it.
func (r *AIOrgReconciler) resolve(ctx context.Context, org *claiimv1.AIOrg) (path []string, reason, msg string, err error) {
	chain, err := claiimv1.OrgPath(org.Name, org.Spec.Parent, func(name string) (claiimv1.OrgName, bool, error) {
		next := &claiimv1.AIOrg{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, next); err != nil {
			if apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("reading AIOrg %q: %w", name, err)
		}
		return next.Spec.Parent, true, nil
	})
	var pe *claiimv1.OrgPathError
	switch {
	case errors.As(err, &pe):
		return nil, pe.Reason, orgPathMessage(org.Name, pe), nil
	case err != nil:
		return nil, "", "", err
	}
	slices.Reverse(chain)
	return chain, claiimv1.ReasonReconciled, fmt.Sprintf("org path resolved: %s", strings.Join(chain, "/")), nil
}

// orgPathMessage says what to do about a path that doesn't resolve.
func orgPathMessage(org string, pe *claiimv1.OrgPathError) string {
	last := pe.Chain[len(pe.Chain)-1]
	switch {
	case pe.Reason == claiimv1.ReasonCycle:
		cycle := append(slices.Clone(pe.Chain[slices.Index(pe.Chain, pe.At):]), pe.At)
		return fmt.Sprintf("the org tree has a cycle: %s; set spec.parent of one of them to break it", strings.Join(cycle, " -> "))
	case pe.Reason == claiimv1.ReasonTooDeep:
		return fmt.Sprintf("the org tree is deeper than %d levels above %q; flatten it", claiimv1.MaxOrgDepth, org)
	case len(pe.Chain) == 1:
		return fmt.Sprintf("parent AIOrg %q does not exist; create it or remove spec.parent", pe.At)
	}
	return fmt.Sprintf("ancestor AIOrg %q (parent of %q) does not exist; create it or re-parent %q", pe.At, last, last)
}

// SetupWithManager watches AIOrgs; a change of one org re-resolves its
// children, whose own status changes then cascade down the tree.
func (r *AIOrgReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&claiimv1.AIOrg{}).
		Watches(&claiimv1.AIOrg{}, handler.EnqueueRequestsFromMapFunc(r.children)).
		Named("aiorg").
		Complete(r)
}

func (r *AIOrgReconciler) children(ctx context.Context, o client.Object) []reconcile.Request {
	return listRequests(ctx, r.Client, &claiimv1.AIOrgList{}, client.MatchingFields{indexParent: o.GetName()})
}

// listRequests lists objects matching opts and turns them into requests.
func listRequests(ctx context.Context, c client.Client, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := c.List(ctx, list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing dependants; they resync later")
		return nil
	}
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		return nil
	})
	return reqs
}
