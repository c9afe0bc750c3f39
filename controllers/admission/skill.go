package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// skillWebhook: published versions never change or disappear (the CRD's
// CEL rules are the first lock, this is the second); a skill in use can't
// go. Every change needs PIM.
type skillWebhook struct{ h *handlers }

var _ admission.Validator[*claiimv1.Skill] = skillWebhook{}

func (w skillWebhook) ValidateCreate(ctx context.Context, _ *claiimv1.Skill) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, noRules)
}

func (w skillWebhook) ValidateUpdate(ctx context.Context, old, s *claiimv1.Skill) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, func(admission.Request) (verdict, error) { return versionsKept(old, s), nil })
}

func (w skillWebhook) ValidateDelete(ctx context.Context, old *claiimv1.Skill) (admission.Warnings, error) {
	return w.h.requirePIM(ctx, func(admission.Request) (verdict, error) { return w.notInUse(ctx, old) })
}

// versionsKept refuses an update that changes or drops a published version.
func versionsKept(old, s *claiimv1.Skill) verdict {
	for i := range old.Spec.Versions {
		ov := &old.Spec.Versions[i]
		nv := s.Version(ov.Version)
		if nv == nil {
			return verdict{refuse: fmt.Sprintf("skill version %d is published and cannot be removed", ov.Version)}
		}
		if !equality.Semantic.DeepEqual(ov, nv) {
			return verdict{refuse: fmt.Sprintf("skill version %d is published and immutable; publish the change as a new version instead", ov.Version)}
		}
	}
	return verdict{}
}

// notInUse refuses to delete a skill an agent that isn't decommissioned
// is pinned to.
func (w skillWebhook) notInUse(ctx context.Context, old *claiimv1.Skill) (verdict, error) {
	agents := &claiimv1.AgentList{}
	if err := w.h.Reader.List(ctx, agents); err != nil {
		return verdict{}, fmt.Errorf("reading agents: %w", err)
	}
	var users []string
	for _, a := range agents.Items {
		if a.Spec.SkillRef.Name == old.Name && a.Spec.Lifecycle != claiimv1.LifecycleDecommissioned {
			users = append(users, a.Namespace+"/"+a.Name)
		}
	}
	if len(users) > 0 {
		slices.Sort(users)
		return verdict{refuse: fmt.Sprintf("skill %q is used by agent(s) %s; re-point or decommission them first", old.Name, strings.Join(users, ", "))}, nil
	}
	return verdict{}, nil
}
