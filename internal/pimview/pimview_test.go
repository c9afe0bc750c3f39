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
