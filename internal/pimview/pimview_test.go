package pimview

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var now = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// request is a PIMRequest by requester, created ago before now, approved
// approvedAgo before now when approver is set.
func request(name, requester, subject, approver string, ago, approvedAgo time.Duration, status claiimv1.PIMPhase) claiimv1.PIMRequest {
	p := claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-ago))},
		Spec:   claiimv1.PIMRequestSpec{Requester: claiimv1.Username(requester), Subject: claiimv1.Username(subject)},
		Status: claiimv1.PIMRequestStatus{Phase: status}}
	if approver != "" {
		p.Annotations = map[string]string{claiimv1.AnnotationApprovedBy: approver,
			claiimv1.AnnotationApprovedAt: now.Add(-approvedAgo).Format(time.RFC3339)}
	}
	return p
}

func TestListNewestFirstWithPhaseNow(t *testing.T) {
	items := []claiimv1.PIMRequest{
		request("old", "admin", "", "", 3*time.Hour, 0, claiimv1.PIMPending),
		// The manager still says Active; the clock has ended it.
		request("ended", "admin", "", "peer", 2*time.Hour, 2*time.Hour, claiimv1.PIMActive),
		// Approved but not yet signed off by the manager: its status counts.
		request("unsigned", "admin", "", "peer", time.Hour, time.Minute, claiimv1.PIMPending),
		request("new", "admin", "", "", time.Minute, 0, ""),
	}
	got := List(items, now)
	want := []struct {
		name  string
		phase claiimv1.PIMPhase
	}{{"new", claiimv1.PIMPending}, {"unsigned", claiimv1.PIMPending}, {"ended", claiimv1.PIMExpired}, {"old", claiimv1.PIMPending}}
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Phase != w.phase {
			t.Errorf("request %d: %s %s, want %s %s", i, got[i].Name, got[i].Phase, w.name, w.phase)
		}
	}
}

func TestRights(t *testing.T) {
	pending := request("p", "admin", "", "", time.Minute, 0, claiimv1.PIMPending)
	forBot := request("b", "peer", "bot", "", time.Minute, 0, claiimv1.PIMPending)
	active := request("a", "admin", "", "peer", time.Hour, time.Minute, claiimv1.PIMActive)
	denied := request("d", "admin", "", "", time.Hour, 0, claiimv1.PIMDenied)
	for _, c := range []struct {
		name                  string
		p                     claiimv1.PIMRequest
		user                  string
		mine, queued          bool
		approve, deny, revoke Right
	}{
		{"own pending", pending, "admin", true, false, Right{Refused: SelfApproval},
			Right{Refused: "two-person rule: you cannot deny your own request; revoke it instead"}, Right{}},
		{"another's pending", pending, "peer", false, true,
			Right{NeedsApprover: true, Missing: "peer may not approve PIM requests: it needs the RBAC verb approve on pimrequests (the claiim-approver ClusterRole)"},
			Right{NeedsApprover: true, Missing: "peer may not approve PIM requests: it needs the RBAC verb approve on pimrequests (the claiim-approver ClusterRole)"},
			Right{NeedsApprover: true, Missing: "only the requester or an approver (RBAC verb approve on pimrequests) can revoke a PIM session"}},
		{"elevating me, asked by another", forBot, "bot", true, false, Right{Refused: SelfApproval},
			Right{Refused: "two-person rule: you cannot deny your own request; revoke it instead"},
			Right{NeedsApprover: true, Missing: "only the requester or an approver (RBAC verb approve on pimrequests) can revoke a PIM session"}},
		{"another's active", active, "peer", false, false, Right{Refused: "already Active"}, Right{Refused: "already Active"},
			Right{NeedsApprover: true, Missing: "only the requester or an approver (RBAC verb approve on pimrequests) can revoke a PIM session"}},
		{"own denied", denied, "admin", true, false, Right{Refused: SelfApproval},
			Right{Refused: "two-person rule: you cannot deny your own request; revoke it instead"}, Right{Refused: "already Denied"}},
	} {
		r := Of(&c.p, now)
		if r.Mine(c.user) != c.mine || r.Queued(c.user) != c.queued {
			t.Errorf("%s: mine %v queued %v, want %v %v", c.name, r.Mine(c.user), r.Queued(c.user), c.mine, c.queued)
		}
		approve, deny, revoke := r.Rights(c.user)
		if approve != c.approve || deny != c.deny || revoke != c.revoke {
			t.Errorf("%s: rights\n%+v\n%+v\n%+v\nwant\n%+v\n%+v\n%+v", c.name, approve, deny, revoke, c.approve, c.deny, c.revoke)
		}
	}
}

// A pending request lapses at the deadline the manager recorded, before
// the manager says so; without a recorded deadline it waits.
func TestPendingLapsesAtTheManagersDeadline(t *testing.T) {
	p := request("p", "admin", "", "", 25*time.Hour, 0, claiimv1.PIMPending)
	if r := Of(&p, now); r.Phase != claiimv1.PIMPending || r.Session.PendingExpired || !r.PendingExpiresAt.IsZero() {
		t.Errorf("no deadline recorded: %s (pending expired %v, at %v), want Pending", r.Phase, r.Session.PendingExpired, r.PendingExpiresAt)
	}
	deadline := metav1.NewTime(p.CreationTimestamp.Add(24 * time.Hour))
	p.Status.PendingExpiresAt = &deadline
	if got := PendingTTL(&p); got != 24*time.Hour {
		t.Errorf("PendingTTL %s, want the manager's 24h", got)
	}
	r := Of(&p, now)
	if r.Phase != claiimv1.PIMExpired || !r.Session.PendingExpired || !r.PendingExpiresAt.Equal(deadline.Time) {
		t.Errorf("past the deadline: %s (pending expired %v, at %v), want Expired at %v", r.Phase, r.Session.PendingExpired, r.PendingExpiresAt, deadline)
	}
	if r.Queued("peer") || r.Open() {
		t.Error("a lapsed request is still in the approval queue or open")
	}
	approve, deny, revoke := r.Rights("peer")
	if approve.Refused == "" || deny.Refused == "" || revoke.Refused != "already Expired" {
		t.Errorf("rights on a lapsed request: %+v %+v %+v, want all refused", approve, deny, revoke)
	}
	if r := Of(&p, deadline.Add(-time.Second)); r.Phase != claiimv1.PIMPending {
		t.Errorf("a second before the deadline: %s, want Pending", r.Phase)
	}
}

// Several approvers: how far the request got, who approved, and that a
// person's second approval is refused before admission has to.
func TestProgressAndApprovers(t *testing.T) {
	p := request("two", "admin", "", "", time.Hour, 0, claiimv1.PIMPending)
	p.Spec.ApprovalsRequired = 2
	p.Status.Approvals = []claiimv1.PIMApproval{{By: "peer", At: metav1.NewTime(now.Add(-time.Minute))}}
	p.SetApprovalRecords([]claiimv1.PIMApprovalRecord{{By: "peer", At: now.Add(-time.Minute).Format(time.RFC3339)}})
	r := Of(&p, now)
	if r.Progress() != "1 of 2 approvals" || len(r.Approvers()) != 1 || r.Approvers()[0] != "peer" {
		t.Errorf("progress %q approvers %v, want 1 of 2 by peer", r.Progress(), r.Approvers())
	}
	approve, deny, _ := r.Rights("peer")
	if approve.Refused != "you approved already, and each person counts once: it has 1 of 2 approvals and waits for another approver" || !deny.NeedsApprover {
		t.Errorf("peer's rights after approving: %+v %+v", approve, deny)
	}
	if approve, _, _ := r.Rights("ciso"); !approve.NeedsApprover {
		t.Errorf("another approver's right: %+v", approve)
	}
	one := request("one", "admin", "", "", time.Hour, 0, claiimv1.PIMPending)
	if r := Of(&one, now); r.Progress() != "" {
		t.Errorf("one approver needed: progress %q, want none", r.Progress())
	}
}
