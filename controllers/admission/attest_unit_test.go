package admission

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// An approval counts only under admission's signature: annotations that
// reached a PIMRequest past the webhooks (deleted, or bypassed) elevate
// nobody, however well-formed.
func TestUnsignedApprovalElevatesNobody(t *testing.T) {
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}}
	for name, c := range map[string]struct {
		mutate func(*claiimv1.PIMRequest)
		admit  bool
	}{
		"signed":           {func(*claiimv1.PIMRequest) {}, true},
		"no signature":     {func(p *claiimv1.PIMRequest) { delete(p.Annotations, claiimv1.AnnotationApprovalAttestation) }, false},
		"approver changed": {func(p *claiimv1.PIMRequest) { p.Annotations[claiimv1.AnnotationApprovedBy] = "admin@claiim.io" }, false},
		"approval time moved": {func(p *claiimv1.PIMRequest) {
			p.Annotations[claiimv1.AnnotationApprovedAt] = t0.Format("2006-01-02T15:04:05Z")
		}, false},
		"longer session": {func(p *claiimv1.PIMRequest) { p.Spec.Duration = &metav1.Duration{Duration: 8 * 3600e9} }, false},
		"another key": {func(p *claiimv1.PIMRequest) {
			p.Annotations[claiimv1.AnnotationApprovalAttestation] = attest.NewSigner(attest.NewKey()).Sign(attest.PIMApproval(p))
		}, false},
		"copied from another request": {func(p *claiimv1.PIMRequest) {
			other := session(admin)
			other.Name = "pim-other"
			other.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.PIMApproval(other))
			p.Annotations[claiimv1.AnnotationApprovalAttestation] = other.Annotations[claiimv1.AnnotationApprovalAttestation]
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			p := session(admin)
			c.mutate(p)
			f := newFixture(t, p)
			resp := f.validate(admissionv1.Create, admin, nil, org)
			if resp.Allowed != c.admit {
				t.Fatalf("allowed = %v, want %v", resp.Allowed, c.admit)
			}
			if !c.admit {
				f.expect(name, resp, ReasonNoPIMSession, "needs an active PIM session")
			}
		})
	}
}

// A person with a session may change an agent, but not the token epoch
// the gate checks the token's attestation against: setting it back would
// bring back a rotated or revoked token.
func TestTokenEpochIsTheManagersAlone(t *testing.T) {
	old := testAgent("t", "bot", "engineering", "deploy-bot", admin)
	old.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: admin, claiimv1.AnnotationTokenEpoch: "3", claiimv1.AnnotationTokenRotated: "r2"}
	skill := testSkill("deploy-bot", "engineering", 1)
	for name, mutate := range map[string]func(*claiimv1.Agent){
		"epoch set back":  func(a *claiimv1.Agent) { a.Annotations[claiimv1.AnnotationTokenEpoch] = "2" },
		"epoch removed":   func(a *claiimv1.Agent) { delete(a.Annotations, claiimv1.AnnotationTokenEpoch) },
		"rotation forged": func(a *claiimv1.Agent) { a.Annotations[claiimv1.AnnotationTokenRotated] = "r3" },
	} {
		f := newFixture(t, skill, session(admin))
		a := old.DeepCopy()
		mutate(a)
		f.expect(name, f.validate(admissionv1.Update, admin, old, a), ReasonInvalid, "written by the manager only", claiimv1.AnnotationRotateToken)
	}

	f := newFixture(t, skill, session(admin))
	a := old.DeepCopy()
	a.Annotations[claiimv1.AnnotationRotateToken] = "2026-11-26"
	f.expect("a rotation request under PIM", f.validate(admissionv1.Update, admin, old, a), ReasonPIMSession)
	if r := f.last(); r == nil || r.Message != `agent t/bot: token rotation requested (claiim.io/rotate-token="2026-11-26")` {
		t.Errorf("the rotation request is recorded as such: %+v", r)
	}
	f = newFixture(t, skill)
	f.expect("a rotation request without PIM", f.validate(admissionv1.Update, admin, old, a), ReasonNoPIMSession, "needs an active PIM session")

	f = newFixture(t, skill, session(admin))
	b := old.DeepCopy()
	b.Annotations[claiimv1.AnnotationTokenEpoch] = "4"
	f.expect("the manager bumps the epoch", f.validate(admissionv1.Update, manager, old, b), "")
}
