package admission

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// Requests that need several approvers, and requests that waited too long.
func TestPIMApprovals(t *testing.T) {
	const ciso = "ciso@claiim.io"
	approvers := map[string]bool{peer + " approve pimrequests/pim-2": true, ciso + " approve pimrequests/pim-2": true}
	two := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "pim-2", UID: "u-2", CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec: claiimv1.PIMRequestSpec{Requester: admin, Subject: admin, ApprovalsRequired: 2, Reason: "Initial onboarding -- setting up first agent fleet"}}
	decide := func(p *claiimv1.PIMRequest, user, ann string) *claiimv1.PIMRequest {
		n := p.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[ann] = "a comment from " + user
		f := newFixture(t)
		f.may = approvers
		return defaults(f, pimRequestWebhook{f.h}, admissionv1.Update, user, p, n)
	}
	with := func(p *claiimv1.PIMRequest, mutate func(*claiimv1.PIMRequest)) *claiimv1.PIMRequest {
		n := p.DeepCopy()
		mutate(n)
		return n
	}

	first := decide(two, peer, claiimv1.AnnotationApprove)
	if _, ok := first.Annotations[claiimv1.AnnotationApprove]; ok || first.Annotations[claiimv1.AnnotationApprovedBy] != "" {
		t.Errorf("a first of two approvals is consumed into the list, starting nothing; got %v", first.Annotations)
	}
	if got := attest.PIMApprovers(first, signer); len(got) != 1 || got[0].By != peer || got[0].Comment != "a comment from "+peer {
		t.Errorf("the first approval is recorded and signed; got %+v", got)
	}
	if s := first.Session(t0); s.Phase != claiimv1.PIMPending {
		t.Errorf("one of two approvals leaves the request Pending; got %s", s.Phase)
	}
	second := decide(first, ciso, claiimv1.AnnotationApprove)
	if s := second.Session(t0); s.Phase != claiimv1.PIMActive || s.ApprovedBy != ciso {
		t.Errorf("the second distinct approver starts the session; got %+v", s)
	}
	if err := attest.PIMApproved(second, signer); err != nil {
		t.Errorf("two signed approvals: %v", err)
	}
	again := decide(first, peer, claiimv1.AnnotationApprove)
	if again.Annotations[claiimv1.AnnotationApprovalAttestation] != "" || attest.PIMApproved(again, signer) == nil {
		t.Error("the same person approving twice must not start a two-approver session")
	}
	// A request made long ago by the suite's clock: 25h before t0.
	stale := with(two, func(p *claiimv1.PIMRequest) { p.CreationTimestamp = metav1.NewTime(t0.Add(-25 * time.Hour)) })
	if s := stale.SessionWithin(t0, 24*time.Hour); s.Phase != claiimv1.PIMExpired || !s.PendingExpired {
		t.Errorf("a request pending past the TTL is Expired; got %+v", s)
	}
	staleHalf := with(first, func(p *claiimv1.PIMRequest) { p.CreationTimestamp = metav1.NewTime(t0.Add(-25 * time.Hour)) })

	cases := []struct {
		name     string
		user     string
		old, obj *claiimv1.PIMRequest
		reason   string
		refusal  []string
	}{
		{"the first of two approvers", peer, two, first, "PIM_APPROVAL_RECORDED", nil},
		{"the second distinct approver", ciso, first, second, "PIM_APPROVED", nil},
		{"the same approver again", peer, first, again, "DUPLICATE_APPROVAL", []string{"you already approved this request", "needs 2 distinct approvers", "has 1"}},
		{"the requester approves", admin, two, decide(two, admin, claiimv1.AnnotationApprove), "SELF_APPROVAL", []string{"you cannot approve your own request"}},
		{"the requester adds to the approvals by hand", admin, first, with(first, func(p *claiimv1.PIMRequest) {
			recs, _ := p.ApprovalRecords()
			p.SetApprovalRecords(append(recs, claiimv1.PIMApprovalRecord{By: ciso, At: t0.Format(time.RFC3339), Attestation: recs[0].Attestation}))
		}), "SELF_APPROVAL", []string{"you cannot approve your own request"}},
		{"an approval entry by hand, unsigned", ciso, first, with(first, func(p *claiimv1.PIMRequest) {
			recs, _ := p.ApprovalRecords()
			p.SetApprovalRecords(append(recs, claiimv1.PIMApprovalRecord{By: ciso, At: t0.Format(time.RFC3339), Attestation: recs[0].Attestation}))
		}), "", []string{"the approval was not signed"}},
		{"an approval removed", peer, first, with(first, func(p *claiimv1.PIMRequest) { delete(p.Annotations, claiimv1.AnnotationApprovals) }),
			"FORGED_IDENTITY", []string{"claiim.io/approvals is written by admission only"}},
		{"approve a request that waited too long", peer, stale, decide(stale, peer, claiimv1.AnnotationApprove), "PIM_PENDING_EXPIRED",
			[]string{"waited longer than 24h0m0s", "expired", "File a new PIMRequest"}},
		{"complete a half-approved request that waited too long", ciso, staleHalf, decide(staleHalf, ciso, claiimv1.AnnotationApprove), "PIM_PENDING_EXPIRED",
			[]string{"can no longer be approved"}},
		{"deny a request that waited too long", peer, stale, decide(stale, peer, claiimv1.AnnotationDeny), "PIM_PENDING_EXPIRED", []string{"approved or denied"}},
		{"revoke a request that waited too long", admin, stale, decide(stale, admin, claiimv1.AnnotationRevoke), "DECISION_FINAL", []string{"already Expired"}},
	}
	for _, c := range cases {
		f := newFixture(t)
		f.may = approvers
		f.expect(c.name, f.validate(admissionv1.Update, c.user, c.old, c.obj), c.reason, c.refusal...)
	}
}
