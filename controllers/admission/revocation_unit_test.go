package admission

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// The manager's cache can lag: a session it still shows active may have
// been revoked or deleted a moment ago. A privileged change is admitted
// only when the apiserver confirms the session.
func TestSessionConfirmedPastTheCache(t *testing.T) {
	revoked := session(admin)
	revoked.Annotations[claiimv1.AnnotationRevokedBy] = peer
	cases := map[string]struct {
		live  []client.Object // what the apiserver holds now
		admit bool
	}{
		"still active":        {live: []client.Object{session(admin)}, admit: true},
		"revoked since":       {live: []client.Object{revoked}},
		"deleted since":       {},
		"replaced by another": {live: []client.Object{renamed(session(admin), "pim-admin-2")}, admit: true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			s := f.h.Scheme
			cache := fake.NewClientBuilder().WithScheme(s).WithObjects(session(admin)).Build()
			live := fake.NewClientBuilder().WithScheme(s).WithObjects(c.live...).Build()
			f.h = newHandlers(Options{Reader: cache, APIReader: live, Client: f.h.Client, Log: f.log,
				ManagerUsername: manager, Signer: signer, Clock: clocktesting.NewFakePassiveClock(t0), Scheme: s})
			org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}}
			resp := f.validate(admissionv1.Create, admin, nil, org)
			if resp.Allowed != c.admit {
				t.Fatalf("admitted %v, want %v: %s", resp.Allowed, c.admit, resp.Result.Message)
			}
			if !c.admit {
				f.expect(name, resp, ReasonNoPIMSession, "needs an active PIM session for "+admin)
			}
		})
	}
}

func renamed(p *claiimv1.PIMRequest, name string) *claiimv1.PIMRequest {
	p.Name = name
	p.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.PIMApproval(p)) // approved under its own name
	return p
}
