package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

// SkillReconciler publishes each skill version's id and digest.
type SkillReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	// Admission checks each generation against admission's stamp.
	Admission *Admission
}

// ReasonInvalidAction: an action pattern of a skill version is invalid.
const ReasonInvalidAction = "InvalidAction"

// +kubebuilder:rbac:groups=claiim.io,resources=skills,verbs=get;list;watch
// +kubebuilder:rbac:groups=claiim.io,resources=skills/status,verbs=get;update;patch

func (r *SkillReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	skill := &claiimv1.Skill{}
	if err := r.Get(ctx, req.NamespacedName, skill); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := skill.DeepCopy()

	// Ids and digests are facts of the versions themselves: publish them
	// even while the org is missing.
	published := make([]claiimv1.PublishedSkillVersion, 0, len(skill.Spec.Versions))
	var patternErrs []error
	for i := range skill.Spec.Versions {
		v := &skill.Spec.Versions[i]
		d := v.Digest()
		published = append(published, claiimv1.PublishedSkillVersion{
			Version: v.Version, ID: claiimv1.SkillVersionID(skill.Name, v.Version, d), Digest: d,
		})
		for _, lists := range [][]claiimv1.ActionPattern{v.AllowedActions, v.ForbiddenActions} {
			for _, a := range lists {
				if _, err := decide.ParsePattern(string(a)); err != nil {
					patternErrs = append(patternErrs, fmt.Errorf("version %d: %w", v.Version, err))
				}
			}
		}
	}
	skill.Status.Versions = published
	skill.Status.LatestVersion, skill.Status.LatestVersionID = 0, ""
	if n := len(published); n > 0 {
		skill.Status.LatestVersion = published[n-1].Version
		skill.Status.LatestVersionID = published[n-1].ID
	}

	reason, msg, err := orgProblem(ctx, r.Client, "Skill", string(skill.Spec.Org))
	if err != nil {
		return ctrl.Result{}, err
	}
	if reason == "" && len(patternErrs) > 0 {
		reason, msg = ReasonInvalidAction, errors.Join(patternErrs...).Error()
	}
	ok := reason == ""
	if ok {
		reason = claiimv1.ReasonReconciled
		msg = fmt.Sprintf("%d version(s) published; latest is %s", len(published), skill.Status.LatestVersionID)
	}
	skill.Status.ObservedGeneration = skill.Generation
	setCondition(&skill.Status.Conditions, skill.Generation, claiimv1.ConditionReady, ok, reason, msg)
	if err := r.Admission.Check(ctx, skill, &skill.Status.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	if err := patchStatus(ctx, r.Client, before, skill, before.Status, skill.Status); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching Skill status: %w", err)
	}
	if before.Status.LatestVersion != skill.Status.LatestVersion && skill.Status.LatestVersion > 0 {
		r.Recorder.Eventf(skill, nil, corev1.EventTypeNormal, "VersionPublished", "Publish", "version %d published as %s", skill.Status.LatestVersion, skill.Status.LatestVersionID)
	}
	readyEvent(r.Recorder, skill, before.Status.Conditions, ok, reason, "Reconcile", msg)
	return ctrl.Result{}, nil
}

// SetupWithManager watches Skills and the AIOrgs they belong to.
func (r *SkillReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&claiimv1.Skill{}).
		Watches(&claiimv1.AIOrg{}, handler.EnqueueRequestsFromMapFunc(byOrg(r.Client, func() client.ObjectList { return &claiimv1.SkillList{} }))).
		Named("skill").
		Complete(r)
}
