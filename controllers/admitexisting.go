package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// The upgrade step. Objects created before admission stamps existed carry
// none, and the gate would not use them. Once per install, the manager
// asks its own mutating webhook to stamp each object that has no stamp at
// all (AnnotationAdmitted = AdmitExisting; the webhook honours that from
// the manager only, and only for an object without a stamp), writing a
// Chron row for each, then records that it did in a ConfigMap. It never
// runs again while that ConfigMap exists; an object found without a stamp
// later is reported as changed past admission.

// AdmissionUpgradeConfigMap records that the upgrade step ran.
const AdmissionUpgradeConfigMap = "claiim-admission-upgrade"

// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=claiim-admission-upgrade,verbs=get
// +kubebuilder:rbac:groups=claiim.io,resources=aiorgs;skills;policies;crossorggrants,verbs=patch

// admitExisting is the upgrade step, run by the leader.
type admitExisting struct {
	Client    client.Client
	APIReader client.Reader
	Namespace string
	Log       Log
	Admission *Admission
}

func (u *admitExisting) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("admit-existing")
	// The webhook server may not be reachable yet: retry until it is.
	return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := u.run(ctx); err != nil {
			log.Info("stamping objects from before admission stamps; retrying", "error", err.Error())
			return false, nil
		}
		u.Admission.MarkUpgraded()
		return true, nil
	})
}

func (u *admitExisting) run(ctx context.Context) error {
	marker := client.ObjectKey{Namespace: u.Namespace, Name: AdmissionUpgradeConfigMap}
	err := u.APIReader.Get(ctx, marker, &corev1.ConfigMap{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	n := 0
	for _, list := range []client.ObjectList{&claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{},
		&claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}} {
		if err := u.APIReader.List(ctx, list); err != nil {
			return err
		}
		err := meta.EachListItem(list, func(o runtime.Object) error {
			obj := o.(client.Object)
			if v := obj.GetAnnotations()[claiimv1.AnnotationAdmitted]; v != "" && v != claiimv1.AdmitExisting {
				return nil
			}
			n++
			return u.stamp(ctx, obj)
		})
		if err != nil {
			return err
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: u.Namespace, Name: AdmissionUpgradeConfigMap, Labels: map[string]string{labelName: "claiim"}},
		Data: map[string]string{"stampedAt": time.Now().UTC().Format(time.RFC3339), "objects": fmt.Sprint(n)}}
	if err := u.Client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("recording the upgrade step in ConfigMap %s: %w", marker, err)
	}
	return nil
}

// stamp records, then asks for, the stamp of one object.
func (u *admitExisting) stamp(ctx context.Context, obj client.Object) error {
	kind := kindName(obj)
	if err := recordEvent(ctx, u.Log, obj.GetUID(), "admit-existing", &chron.Record{Kind: chron.KindAdmissionAdmitted,
		Action: "admission:admit-existing", Outcome: chron.OutcomeAllow, Reason: "ADMITTED_AT_UPGRADE", Org: orgOf(obj),
		Message: fmt.Sprintf("%s %s generation %d, created before admission stamps existed, stamped as it is at upgrade", kind, objName(obj), obj.GetGeneration()),
		Context: map[string]any{"kind": kind, "name": obj.GetName(), "generation": obj.GetGeneration()}}); err != nil {
		return err
	}
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[claiimv1.AnnotationAdmitted] = claiimv1.AdmitExisting
	obj.SetAnnotations(ann)
	if err := u.Client.Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("stamping %s %s: %w", kind, objName(obj), err)
	}
	return nil
}
