package admission

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

const cfo = "cfo@claiim.io"

func TestGrantWebhook(t *testing.T) {
	g := testGrant(claiimv1.GrantPending, t0.Add(time.Hour))
	g.Status = claiimv1.CrossOrgGrantStatus{}
	// approve is g as the mutating webhook leaves it when user sets ann.
	approve := func(old *claiimv1.CrossOrgGrant, user, ann string) *claiimv1.CrossOrgGrant {
		n := old.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[ann] = "yes"
		f := newFixture(t)
		return defaults(f, grantWebhook{f.h}, admissionv1.Update, user, old, n)
	}
	byCFO := approve(g, cfo, claiimv1.AnnotationApproveGranting)
	with := func(base *claiimv1.CrossOrgGrant, mutate func(*claiimv1.CrossOrgGrant)) *claiimv1.CrossOrgGrant {
		n := base.DeepCopy()
		mutate(n)
		return n
	}
	const both = "both@claiim.io"
	byBoth := approve(g, both, claiimv1.AnnotationApproveGranting)
	admins := map[string]bool{cfo + " approve-grant aiorgs/finance": true, peer + " approve-grant aiorgs/engineering": true,
		both + " approve-grant aiorgs/finance": true, both + " approve-grant aiorgs/engineering": true}

	cases := []struct {
		name     string
		user     string
		op       admissionv1.Operation
		old, obj *claiimv1.CrossOrgGrant
		session  bool
		reason   string
		refusal  []string
	}{
		{"create without a session", admin, admissionv1.Create, nil, g, false, ReasonNoPIMSession, []string{"creating CrossOrgGrant \"finance-to-engineering\" needs an active PIM session"}},
		{"create with a session", admin, admissionv1.Create, nil, g, true, ReasonPIMSession, nil},
		{"the granting org's admin approves: their own act", cfo, admissionv1.Update, g, byCFO, false, ReasonOwnAct, nil},
		{"the receiving org's admin approves the other side", peer, admissionv1.Update, byCFO, approve(byCFO, peer, claiimv1.AnnotationApproveReceiving), false, ReasonOwnAct, nil},
		{"an admin of another org approves", peer, admissionv1.Update, g, approve(g, peer, claiimv1.AnnotationApproveGranting), true, ReasonInvalid, []string{"peer@claiim.io is not an admin of org \"finance\"", "approve-grant"}},
		{"an admin of one org approves the other side too", cfo, admissionv1.Update, byCFO, approve(byCFO, cfo, claiimv1.AnnotationApproveReceiving), false, ReasonInvalid, []string{"not an admin of org \"engineering\""}},
		{"an admin of both orgs approves both sides", both, admissionv1.Update, byBoth, approve(byBoth, both, claiimv1.AnnotationApproveReceiving), false, ReasonInvalid, []string{"two different people; both@claiim.io already approved the other side"}},
		{"a stamp written by hand", admin, admissionv1.Update, g, with(g, func(n *claiimv1.CrossOrgGrant) {
			n.Annotations = map[string]string{claiimv1.AnnotationApproveGranting: "yes", claiimv1.AnnotationGrantingApprovedBy: cfo}
		}), true, ReasonInvalid, []string{"annotation claiim.io/granting-approved-by is written by admission only"}},
		{"a recorded approval withdrawn", cfo, admissionv1.Update, byCFO, g, true, ReasonInvalid, []string{"the approval claiim.io/approve-granting is recorded and cannot be changed or removed"}},
		{"revoke: a safety action, no session", cfo, admissionv1.Update, byCFO, with(byCFO, func(n *claiimv1.CrossOrgGrant) { n.Spec.Revoked = true }), false, ReasonSafety, nil},
		{"revoke and relabel: needs a session", cfo, admissionv1.Update, byCFO, with(byCFO, func(n *claiimv1.CrossOrgGrant) { n.Spec.Revoked = true; n.Labels = map[string]string{"x": "y"} }), false, ReasonNoPIMSession, []string{"needs an active PIM session for cfo@claiim.io"}},
		{"approve and change the reason: needs a session", cfo, admissionv1.Update, g, with(byCFO, func(n *claiimv1.CrossOrgGrant) { n.Spec.Reason = "more" }), false, ReasonNoPIMSession, []string{"needs an active PIM session"}},
		{"delete without a session", admin, admissionv1.Delete, g, nil, false, ReasonNoPIMSession, []string{"deleting CrossOrgGrant"}},
		{"delete with a session", admin, admissionv1.Delete, g, nil, true, ReasonPIMSession, nil},
	}
	for _, c := range cases {
		var existing []client.Object
		if c.session {
			existing = append(existing, session(c.user))
		}
		f := newFixture(t, existing...)
		f.may = admins
		f.expect(c.name, f.validate(c.op, c.user, orNil(c.old), orNil(c.obj)), c.reason, c.refusal...)
	}
}

func TestGrantDefaulter(t *testing.T) {
	f := newFixture(t)
	w := grantWebhook{f.h}
	g := testGrant(claiimv1.GrantPending, t0.Add(time.Hour))
	forged := g.DeepCopy()
	forged.Annotations = map[string]string{claiimv1.AnnotationApproveGranting: "yes", claiimv1.AnnotationGrantingApprovedBy: cfo, "keep": "me"}
	// (No session: the creation would be refused, so it is not stamped.)
	if got := defaults(f, w, admissionv1.Create, admin, nil, forged); len(got.Annotations) != 1 || got.Annotations["keep"] != "me" {
		t.Errorf("approvals come after creation, from each side; got %v", got.Annotations)
	}

	approving := g.DeepCopy()
	approving.Annotations = map[string]string{claiimv1.AnnotationApproveGranting: "yes", claiimv1.AnnotationGrantingApprovedBy: admin}
	got := defaults(f, w, admissionv1.Update, cfo, g, approving)
	if got.Annotations[claiimv1.AnnotationGrantingApprovedBy] != cfo || got.Annotations[claiimv1.AnnotationReceivingApprovedBy] != "" {
		t.Errorf("the approver is stamped from the authenticated user; got %v", got.Annotations)
	}

	later := got.DeepCopy()
	later.Annotations[claiimv1.AnnotationGrantingApprovedBy] = admin
	if again := defaults(f, w, admissionv1.Update, admin, got, later); again.Annotations[claiimv1.AnnotationGrantingApprovedBy] != cfo {
		t.Errorf("a recorded stamp stays; got %v", again.Annotations)
	}
}
