package attest

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// TestPIMApproversOnePersonOnce: approvals signed by the manager for
// spellings of the requester, the subject or an approver already counted
// (case, surrounding spaces) count nothing more, even with valid
// signatures; an approval signed for another request counts nothing.
func TestPIMApproversOnePersonOnce(t *testing.T) {
	s := NewSigner(NewKey())
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "pim-a", UID: "u-a"},
		Spec: claiimv1.PIMRequestSpec{Requester: "admin@claiim.io", Subject: "deployer@claiim.io", ApprovalsRequired: 3}}
	other := p.DeepCopy()
	other.Name, other.UID = "pim-b", "u-b"
	at := "2026-12-03T07:00:00Z"
	rec := func(on *claiimv1.PIMRequest, by claiimv1.Username) claiimv1.PIMApprovalRecord {
		return claiimv1.PIMApprovalRecord{By: by, At: at, Attestation: s.Sign(PIMApprovalEntry(on, by, at))}
	}
	// A list holds at most MaxPIMApprovalsRequired entries: two lists.
	for _, recs := range [][]claiimv1.PIMApprovalRecord{
		{rec(p, "Admin@claiim.io"), rec(p, " admin@claiim.io"), rec(p, "DEPLOYER@claiim.io"), // the requester and subject, spelled otherwise
			rec(p, "peer@claiim.io"), rec(other, "ciso@claiim.io")}, // signed for another request
		{rec(p, "peer@claiim.io"), rec(p, "PEER@claiim.io"), rec(p, "peer@claiim.io ")}, // one approver three times
	} {
		p.SetApprovalRecords(recs)
		got := PIMApprovers(p, s)
		if len(got) != 1 || got[0].By != "peer@claiim.io" {
			t.Fatalf("approvers %+v, want peer@claiim.io once", got)
		}
	}
	for _, c := range []struct {
		a, b claiimv1.Username
		same bool
	}{{"a@x.io", "A@X.IO", true}, {" a@x.io\t", "a@x.io", true}, {"a@x.io", "b@x.io", false}, {"system:serviceaccount:ns:a", "system:serviceaccount:ns:b", false}} {
		if claiimv1.SamePerson(c.a, c.b) != c.same {
			t.Errorf("SamePerson(%q, %q) = %v", c.a, c.b, !c.same)
		}
	}
}
