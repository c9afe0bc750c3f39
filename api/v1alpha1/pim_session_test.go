package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPIMSession(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	req := func(ann map[string]string) *PIMRequest {
		return &PIMRequest{ObjectMeta: metav1.ObjectMeta{Annotations: ann},
			Spec: PIMRequestSpec{Requester: "admin@claiim.io", Reason: "onboarding", Duration: &metav1.Duration{Duration: time.Hour}}}
	}
	approved := map[string]string{AnnotationApprovedBy: "peer@claiim.io", AnnotationApprovedAt: at.Format(time.RFC3339)}
	cases := []struct {
		name string
		ann  map[string]string
		now  time.Time
		want PIMPhase
		user string
		elev bool
	}{
		{"pending", nil, at, PIMPending, "admin@claiim.io", false},
		{"active", approved, at.Add(59 * time.Minute), PIMActive, "admin@claiim.io", true},
		{"active, but not for another user", approved, at, PIMActive, "peer@claiim.io", false},
		{"expired exactly at expiry", approved, at.Add(time.Hour), PIMExpired, "admin@claiim.io", false},
		{"denied", map[string]string{AnnotationDeniedBy: "peer@claiim.io"}, at, PIMDenied, "admin@claiim.io", false},
		{"revoked after approval", map[string]string{AnnotationApprovedBy: "peer@claiim.io", AnnotationApprovedAt: at.Format(time.RFC3339), AnnotationRevokedBy: "admin@claiim.io"}, at, PIMRevoked, "admin@claiim.io", false},
		{"unreadable approval time", map[string]string{AnnotationApprovedBy: "peer@claiim.io", AnnotationApprovedAt: "soon"}, at, PIMPending, "admin@claiim.io", false},
	}
	for _, c := range cases {
		p := req(c.ann)
		if got := p.Session(c.now).Phase; got != c.want {
			t.Errorf("%s: phase %s, want %s", c.name, got, c.want)
		}
		if got := p.Elevates(c.user, c.now); got != c.elev {
			t.Errorf("%s: Elevates(%s) = %v, want %v", c.name, c.user, got, c.elev)
		}
	}
	deleting := req(approved)
	deleting.DeletionTimestamp, deleting.Finalizers = &metav1.Time{Time: at}, []string{"example.com/hold"}
	if deleting.Session(at).Phase != PIMRevoked || deleting.Elevates("admin@claiim.io", at) {
		t.Error("a request being deleted (a finalizer holding it) must not elevate anyone")
	}
	sub := req(approved)
	sub.Spec.Subject = "system:serviceaccount:argocd:argocd-application-controller"
	if !sub.Elevates("system:serviceaccount:argocd:argocd-application-controller", at) || sub.Elevates("admin@claiim.io", at) {
		t.Error("a session with a subject elevates the subject and only the subject")
	}
}

func TestPIMPendingExpiry(t *testing.T) {
	made := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	p := &PIMRequest{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(made)}, Spec: PIMRequestSpec{Requester: "admin@claiim.io"}}
	if s := p.SessionWithin(made.Add(24*time.Hour-time.Second), 24*time.Hour); s.Phase != PIMPending || s.PendingExpired {
		t.Errorf("a second before the TTL: %+v", s)
	}
	if s := p.SessionWithin(made.Add(24*time.Hour), 24*time.Hour); s.Phase != PIMExpired || !s.PendingExpired {
		t.Errorf("exactly at the TTL: %+v", s)
	}
	approved := p.DeepCopy()
	approved.Annotations = map[string]string{AnnotationApprovedBy: "peer@claiim.io", AnnotationApprovedAt: made.Add(23*time.Hour + 30*time.Minute).Format(time.RFC3339)}
	if s := approved.SessionWithin(made.Add(24*time.Hour), 24*time.Hour); s.Phase != PIMActive {
		t.Errorf("an approved request is a session, whatever the pending TTL: %+v", s)
	}
	if !(&PIMRequest{}).PendingDeadline(time.Hour).IsZero() {
		t.Error("a request never stored has no deadline")
	}
	tooMany := p.DeepCopy()
	tooMany.SetApprovalRecords(make([]PIMApprovalRecord, MaxPIMApprovalsRequired+1))
	if _, err := tooMany.ApprovalRecords(); err == nil {
		t.Error("more approvals than any request may need must not be read")
	}
	if (&PIMRequest{}).Required() != 1 {
		t.Error("a request from before approvalsRequired needs one approver")
	}
}

// TestActionApprovalApproversOnePersonOnce: two spellings of one username
// are one approver, so a two-person approval cannot be met by one person.
func TestActionApprovalApproversOnePersonOnce(t *testing.T) {
	a := &ActionApproval{}
	a.Annotations = map[string]string{AnnotationApprovers: ApproversJSON([]string{"peer@claiim.io", " PEER@claiim.io"})}
	a.Spec.ApprovalsRequired = 2
	a.Spec.ExpiresAt = metav1.NewTime(time.Now().Add(time.Hour))
	if got := a.Approvers(); len(got) != 1 {
		t.Fatalf("Approvers() = %q, want one person", got)
	}
	if st := a.State(time.Now()); st.Phase != ApprovalPending {
		t.Errorf("phase %s with one person's two spellings, want %s", st.Phase, ApprovalPending)
	}
}
