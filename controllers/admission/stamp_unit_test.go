package admission

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

func testPolicy() *claiimv1.Policy {
	return &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "freeze"}, Spec: claiimv1.PolicySpec{Org: "engineering",
		Rules: []claiimv1.PolicyRule{{Name: "no-prod", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}
}

// asStored is obj as the apiserver stores it after a write over old.
func asStored[T client.Object](obj T, old client.Object) T {
	out := obj.DeepCopyObject().(T)
	out.SetGeneration(1)
	out.SetUID(types.UID("uid-" + out.GetName()))
	out.SetCreationTimestamp(metav1.NewTime(time.Now()))
	if old != nil {
		out.SetGeneration(old.GetGeneration() + 1)
		out.SetUID(old.GetUID())
		out.SetCreationTimestamp(old.GetCreationTimestamp())
	}
	return out
}

// The mutating webhook stamps a write only when the validating webhook
// will admit it: deleting the validating configuration alone makes
// nothing admitted.
func TestStampOnlyWhatIsAdmitted(t *testing.T) {
	p := testPolicy()
	for name, c := range map[string]struct {
		user    string
		session bool
		stamped bool
	}{
		"under a PIM session": {admin, true, true},
		"without a session":   {admin, false, false},
		"the manager":         {manager, false, true},
	} {
		f := newFixture(t)
		if c.session {
			f = newFixture(t, session(c.user))
		}
		got := asStored(defaults(f, stampOnly[*claiimv1.Policy]{f.h}, admissionv1.Create, c.user, nil, p), nil)
		if err := attest.VerifyStamp(signer, got); (err == nil) != c.stamped {
			t.Errorf("%s: stamp check %v, want stamped=%v", name, err, c.stamped)
		}
	}
	// A stamp in the request is never kept.
	forged := p.DeepCopy()
	forged.Annotations = map[string]string{claiimv1.AnnotationAdmitted: "u0.1.v1.0000000000000000.AAAA"}
	f := newFixture(t)
	if got := defaults(f, stampOnly[*claiimv1.Policy]{f.h}, admissionv1.Create, admin, nil, forged); got.Annotations[claiimv1.AnnotationAdmitted] != "" {
		t.Errorf("a stamp from the request was kept: %v", got.Annotations)
	}
}

// An object changed past admission stays so: a write without a session
// (a suspension, the manager's bookkeeping) keeps its stale stamp; only
// a write under PIM admits it again.
func TestStaleStampIsKept(t *testing.T) {
	admittedAgent := admitted(t, testAgent("t", "bot", "engineering", "deploy-bot", admin)).(*claiimv1.Agent)
	tampered := admittedAgent.DeepCopy()
	tampered.Spec.SkillRef.Version, tampered.Generation = 2, 2 // written past the webhooks
	stale := tampered.Annotations[claiimv1.AnnotationAdmitted]
	skill := testSkill("deploy-bot", "engineering", 2)

	suspend := tampered.DeepCopy()
	suspend.Spec.Lifecycle = claiimv1.LifecycleSuspended
	for name, c := range map[string]struct {
		user    string
		session bool
		fresh   bool
	}{
		"a suspension, no session":     {admin, false, false},
		"the manager's own write":      {manager, false, false},
		"the same write under session": {admin, true, true},
	} {
		objs := []client.Object{skill}
		if c.session {
			objs = append(objs, session(c.user))
		}
		f := newFixture(t, objs...)
		got := defaults(f, agentWebhook{f.h}, admissionv1.Update, c.user, tampered, suspend)
		if v := got.Annotations[claiimv1.AnnotationAdmitted]; (v != stale) != c.fresh {
			t.Errorf("%s: fresh stamp = %v, want %v", name, v != stale, c.fresh)
		}
		if c.fresh {
			continue
		}
		// And the validating webhook lets it keep the stale one.
		f.expect(name+" (validated)", f.validateAsIs(admissionv1.Update, c.user, tampered, asStored(got, tampered)), map[bool]string{true: "", false: ReasonSafety}[c.user == manager])
	}
}

// The manager stamps an object from before stamps existed once, when it
// asks to (the upgrade step), and never one with a stale stamp.
func TestAdmitExisting(t *testing.T) {
	legacy := asStored(testPolicy(), nil)
	ask := legacy.DeepCopy()
	ask.Annotations = map[string]string{claiimv1.AnnotationAdmitted: claiimv1.AdmitExisting}
	f := newFixture(t)
	got := asStored(defaults(f, stampOnly[*claiimv1.Policy]{f.h}, admissionv1.Update, manager, legacy, ask), legacy)
	got.Generation = legacy.Generation
	if err := attest.VerifyStamp(signer, got); err != nil {
		t.Errorf("the upgrade step did not stamp: %v", err)
	}
	if got := defaults(f, stampOnly[*claiimv1.Policy]{f.h}, admissionv1.Update, admin, legacy, ask); got.Annotations[claiimv1.AnnotationAdmitted] == claiimv1.AdmitExisting ||
		attest.VerifyStamp(signer, asStored(got, legacy)) == nil {
		t.Errorf("someone else's upgrade request was honoured: %v", got.Annotations)
	}

	staleOne := admitted(t, testPolicy()).(*claiimv1.Policy)
	staleOne.Generation = 5
	ask = staleOne.DeepCopy()
	ask.Annotations[claiimv1.AnnotationAdmitted] = claiimv1.AdmitExisting
	got = defaults(f, stampOnly[*claiimv1.Policy]{f.h}, admissionv1.Update, manager, staleOne, ask)
	if got.Annotations[claiimv1.AnnotationAdmitted] != staleOne.Annotations[claiimv1.AnnotationAdmitted] {
		t.Errorf("an object changed past admission was re-admitted by the upgrade step: %v", got.Annotations)
	}
}

// Only the mutating webhook's stamp passes the validating webhook.
func TestValidatingRefusesOtherStamps(t *testing.T) {
	old := admitted(t, testPolicy())
	changed := old.DeepCopyObject().(*claiimv1.Policy)
	changed.Spec.Rules[0].Actions = []claiimv1.ActionPattern{"deploy:*"}
	other := attest.NewSigner(attest.NewKey())
	for name, set := range map[string]func(p *claiimv1.Policy){
		"no stamp (the mutating webhook did not run)": func(p *claiimv1.Policy) { delete(p.Annotations, claiimv1.AnnotationAdmitted) },
		"the old stamp kept":                          func(*claiimv1.Policy) {},
		"a stamp by another key": func(p *claiimv1.Policy) {
			p.Annotations[claiimv1.AnnotationAdmitted], _ = attest.NewStamp(other, p, old, time.Now())
		},
	} {
		for _, user := range []string{admin, manager} {
			f := newFixture(t, session(admin))
			p := asStored(changed, old)
			set(p)
			f.expect(name+" by "+user, f.validateAsIs(admissionv1.Update, user, old, p), ReasonNotStamped, "no valid admission stamp", "mpolicy.claiim.io")
		}
	}
	f := newFixture(t, session(admin))
	p := asStored(changed, old)
	p.Annotations[claiimv1.AnnotationAdmitted], _ = attest.NewStamp(signer, p, old, time.Now())
	f.expect("the mutating webhook's stamp", f.validateAsIs(admissionv1.Update, admin, old, p), ReasonPIMSession)
}
