package admission

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func TestPIMRequestWebhook(t *testing.T) {
	const sa = "system:serviceaccount:argocd:argocd-application-controller"
	pending := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "pim-1"},
		Spec: claiimv1.PIMRequestSpec{Requester: admin, Subject: admin, Reason: "Initial onboarding -- setting up first agent fleet"}}
	forSA := pending.DeepCopy()
	forSA.Spec.Subject = sa
	bot, allowedBot := "system:serviceaccount:ops:bot", "system:serviceaccount:ops:approval-bot"
	approvers := map[string]bool{peer + " approve pimrequests/pim-1": true, bot + " approve pimrequests/pim-1": true,
		allowedBot + " approve pimrequests/pim-1": true}
	// decide is p as the mutating webhook leaves it when user sets ann
	// (it signs an approval that passes the approver checks).
	decide := func(p *claiimv1.PIMRequest, user, ann string) *claiimv1.PIMRequest {
		n := p.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[ann] = "a comment"
		f := newFixture(t)
		f.may = approvers
		return defaults(f, pimRequestWebhook{f.h}, admissionv1.Update, user, p, n)
	}
	with := func(p *claiimv1.PIMRequest, mutate func(*claiimv1.PIMRequest)) *claiimv1.PIMRequest {
		n := p.DeepCopy()
		mutate(n)
		return n
	}
	active := decide(pending, peer, claiimv1.AnnotationApprove)
	expired := with(active, func(p *claiimv1.PIMRequest) {
		p.Annotations[claiimv1.AnnotationApprovedAt] = t0.Add(-2 * time.Hour).Format(time.RFC3339)
	})

	cases := []struct {
		name     string
		user     string
		op       admissionv1.Operation
		old, obj *claiimv1.PIMRequest
		reason   string
		refusal  []string
	}{
		{"ask for elevation", admin, admissionv1.Create, nil, pending, "PIM_REQUESTED", nil},
		{"ask in someone else's name", peer, admissionv1.Create, nil, pending, "FORGED_IDENTITY", []string{"spec.requester must be you (peer@claiim.io)"}},
		{"approve one's own request", admin, admissionv1.Update, pending, decide(pending, admin, claiimv1.AnnotationApprove), "SELF_APPROVAL",
			[]string{"you cannot approve your own request", "kubectl annotate pimrequest pim-1 claiim.io/approve="}},
		{"deny one's own request", admin, admissionv1.Update, pending, decide(pending, admin, claiimv1.AnnotationDeny), "SELF_APPROVAL", []string{"you cannot deny your own request"}},
		{"the subject approves the request made for it", sa, admissionv1.Update, forSA, decide(forSA, sa, claiimv1.AnnotationApprove), "SELF_APPROVAL", []string{"your own request"}},
		{"someone without the verb approves", cfo, admissionv1.Update, pending, decide(pending, cfo, claiimv1.AnnotationApprove), "NOT_AN_APPROVER",
			[]string{"cfo@claiim.io may not approve PIM requests", "claiim-approver"}},
		{"a second person approves", peer, admissionv1.Update, pending, active, "PIM_APPROVED", nil},
		{"a ServiceAccount with the verb approves", bot, admissionv1.Update, pending, decide(pending, bot, claiimv1.AnnotationApprove), "SERVICEACCOUNT_APPROVER",
			[]string{"PIM approvals come from people", "--pim-approver-serviceaccounts"}},
		{"the ServiceAccount the manager was told to accept approves", allowedBot, admissionv1.Update, pending, decide(pending, allowedBot, claiimv1.AnnotationApprove), "PIM_APPROVED", nil},
		{"a ServiceAccount denies (the safe side)", bot, admissionv1.Update, pending, decide(pending, bot, claiimv1.AnnotationDeny), "PIM_DENIED", nil},
		{"an approval without admission's signature", peer, admissionv1.Update, pending, with(active, func(p *claiimv1.PIMRequest) {
			delete(p.Annotations, claiimv1.AnnotationApprovalAttestation)
		}), "", []string{"the approval was not signed"}},
		{"a second person denies", peer, admissionv1.Update, pending, decide(pending, peer, claiimv1.AnnotationDeny), "PIM_DENIED", nil},
		{"deny after approval", peer, admissionv1.Update, active, decide(active, peer, claiimv1.AnnotationDeny), "DECISION_FINAL", []string{"this request is already Active"}},
		{"change a decision", peer, admissionv1.Update, active, with(active, func(p *claiimv1.PIMRequest) { p.Annotations[claiimv1.AnnotationApprove] = "other" }), "DECISION_FINAL",
			[]string{"annotation claiim.io/approve is a recorded decision"}},
		{"two decisions at once", peer, admissionv1.Update, pending, decide(decide(pending, peer, claiimv1.AnnotationApprove), peer, claiimv1.AnnotationRevoke), "ONE_DECISION", []string{"at a time"}},
		{"a stamp written by hand", admin, admissionv1.Update, pending, with(pending, func(p *claiimv1.PIMRequest) {
			p.Annotations = map[string]string{claiimv1.AnnotationApprovedBy: peer}
		}), "FORGED_IDENTITY", []string{"annotation claiim.io/approved-by is written by admission only"}},
		{"change the requester", admin, admissionv1.Update, pending, with(pending, func(p *claiimv1.PIMRequest) { p.Spec.Requester = peer }), "FORGED_IDENTITY", []string{"cannot change"}},
		{"lengthen an approved session", admin, admissionv1.Update, active, with(active, func(p *claiimv1.PIMRequest) { p.Spec.Duration = &metav1.Duration{Duration: 8 * time.Hour} }), "SPEC_FINAL",
			[]string{"cannot be changed once made"}},
		{"reword the reason", admin, admissionv1.Update, pending, with(pending, func(p *claiimv1.PIMRequest) { p.Spec.Reason = "something else entirely" }), "SPEC_FINAL", []string{"create a new one"}},
		{"the requester revokes", admin, admissionv1.Update, active, decide(active, admin, claiimv1.AnnotationRevoke), "PIM_REVOKED", nil},
		{"an approver revokes", peer, admissionv1.Update, active, decide(active, peer, claiimv1.AnnotationRevoke), "PIM_REVOKED", nil},
		{"someone else revokes", cfo, admissionv1.Update, active, decide(active, cfo, claiimv1.AnnotationRevoke), "NOT_AN_APPROVER", []string{"only the requester or an approver"}},
		{"revoke an expired session", admin, admissionv1.Update, expired, decide(expired, admin, claiimv1.AnnotationRevoke), "DECISION_FINAL", []string{"already Expired; there is nothing to revoke"}},
		{"relabel: no decision, nothing to record", admin, admissionv1.Update, pending, with(pending, func(p *claiimv1.PIMRequest) { p.Labels = map[string]string{"x": "y"} }), "", nil},
		{"delete", admin, admissionv1.Delete, active, nil, "PIM_DELETED", nil},
	}
	for _, c := range cases {
		f := newFixture(t)
		f.may = approvers
		f.expect(c.name, f.validate(c.op, c.user, orNil(c.old), orNil(c.obj)), c.reason, c.refusal...)
	}

	// A dry run promises no side effects: nothing is recorded.
	f := newFixture(t)
	req := f.request(admissionv1.Create, admin, nil, pending)
	dry := true
	req.DryRun = &dry
	routes, _ := f.h.routes()
	if resp := routes[PathValidatePIM].Handle(t.Context(), req); !resp.Allowed || len(f.log.rows) != 0 {
		t.Errorf("dry run: allowed=%v, %d records", resp.Allowed, len(f.log.rows))
	}
}

// ptr turns a nil *PIMRequest into a nil interface.
func TestPIMRequestDefaulter(t *testing.T) {
	f := newFixture(t)
	w := pimRequestWebhook{f.h}
	forged := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "pim-1", Annotations: map[string]string{
		claiimv1.AnnotationApprove: "self", claiimv1.AnnotationApprovedBy: peer, claiimv1.AnnotationApprovedAt: t0.Format(time.RFC3339), "keep": "me"}},
		Spec: claiimv1.PIMRequestSpec{Requester: peer, Reason: "Initial onboarding -- setting up first agent fleet"}}
	p := defaults(f, w, admissionv1.Create, admin, nil, forged)
	if p.Spec.Requester != admin || p.Spec.Subject != admin || len(p.Annotations) != 1 || p.Annotations["keep"] != "me" {
		t.Errorf("create: requester and subject from the user, no decision at birth; got %+v %v", p.Spec, p.Annotations)
	}

	approving := p.DeepCopy()
	approving.Annotations[claiimv1.AnnotationApprove] = "ok"
	approving.Annotations[claiimv1.AnnotationDeniedBy] = "forged"
	got := defaults(f, w, admissionv1.Update, peer, p, approving)
	if got.Annotations[claiimv1.AnnotationApprovedBy] != peer || got.Annotations[claiimv1.AnnotationApprovedAt] != t0.Format(time.RFC3339) ||
		got.Annotations[claiimv1.AnnotationDeniedBy] != "" {
		t.Errorf("update: the approver and the time are stamped, forged stamps dropped; got %v", got.Annotations)
	}
	if s := got.Session(t0); s.Phase != claiimv1.PIMActive || s.ApprovedBy != peer {
		t.Errorf("the stamped request is an active session; got %+v", s)
	}
}
