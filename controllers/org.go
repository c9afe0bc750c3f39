package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// orgProblem says why the named org can't be used yet ("" reason when it
// can): it must exist and be Ready.
func orgProblem(ctx context.Context, c client.Client, kind, name string) (reason, msg string, err error) {
	org := &claiimv1.AIOrg{}
	if err := c.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return claiimv1.ReasonOrgNotFound, fmt.Sprintf("AIOrg %q does not exist; create it before this %s", name, kind), nil
		}
		return "", "", fmt.Errorf("reading AIOrg %q: %w", name, err)
	}
	if ok, _, m := readyReason(org.Status.Conditions); !ok {
		if m == "" {
			m = "it has not been reconciled yet"
		}
		return claiimv1.ReasonOrgNotReady, fmt.Sprintf("AIOrg %q is not ready: %s", name, m), nil
	}
	return "", "", nil
}

// byOrg maps an AIOrg to the objects of list's kind in that org.
func byOrg(c client.Client, newList func() client.ObjectList) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return listRequests(ctx, c, newList(), client.MatchingFields{indexOrg: o.GetName()})
	}
}
