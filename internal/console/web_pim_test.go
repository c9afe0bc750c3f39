package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// pimByReason is the name of the request with reason, as the apiserver has it.
func (w *world) pimByReason(t *testing.T, reason string) *claiimv1.PIMRequest {
	t.Helper()
	var list claiimv1.PIMRequestList
	if err := w.env.Client.List(w.ctx, &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].Spec.Reason == reason {
			return &list.Items[i]
		}
	}
	t.Fatalf("no PIMRequest with reason %q", reason)
	return nil
}

func (w *world) pimPhase(g Gomega, name string) claiimv1.PIMPhase {
	p := &claiimv1.PIMRequest{}
	g.Expect(w.env.Client.Get(w.ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
	return p.Status.Phase
}

// The seed's step 4 in the console: admin asks, peer approves, admin's
// session turns Active; nobody approves their own request.
func TestPIMRequestedAndApprovedInTheConsole(t *testing.T) {
	w := kube(t)
	admin, peer := w.login(t, adminUser), w.login(t, peerUser)
	reason := "console test " + suffix() + ": initial onboarding"
	status, body := admin.post("/pim", url.Values{"reason": {reason}, "duration": {"30m"}})
	if status != http.StatusOK || !strings.Contains(body, "pending approval") {
		t.Fatalf("requesting elevation: %d\n%s", status, body)
	}
	p := w.pimByReason(t, reason)
	if p.Spec.Requester != adminUser || p.Spec.Duration.Duration.String() != "30m0s" {
		t.Fatalf("the request was made as %q for %v; want %s for 30m", p.Spec.Requester, p.Spec.Duration, adminUser)
	}

	// Admin sees it as theirs, never in the queue, and why they cannot approve it.
	_, body = admin.get("/pim")
	mine, queue := section(body, "mine"), section(body, "queue")
	if !strings.Contains(mine, p.Name) || !strings.Contains(mine, "two-person rule: you cannot approve your own request") {
		t.Errorf("admin's own requests lack %s or the two-person reason:\n%s", p.Name, mine)
	}
	if strings.Contains(queue, p.Name) {
		t.Errorf("admin's approval queue shows admin's own request %s:\n%s", p.Name, queue)
	}
	// Posting the approval anyway gets the webhook's own refusal.
	status, body = admin.post("/pim/"+p.Name+"/approve", url.Values{"reason": {"looks fine to me"}})
	if status != http.StatusForbidden || !strings.Contains(body, "you cannot approve your own request: two-person control needs a second admin") {
		t.Errorf("admin approving their own request: %d, want 403 with the webhook's words\n%s", status, body)
	}

	// Peer, an approver, sees it in the queue with a working button.
	_, body = peer.get("/pim")
	approve := form(section(body, "queue"), "/pim/"+p.Name+"/approve")
	if approve == "" || strings.Contains(approve, "disabled") {
		t.Fatalf("peer's queue: want an enabled approve form for %s, got %q\n%s", p.Name, approve, body)
	}
	status, body = peer.post("/pim/"+p.Name+"/approve", url.Values{"reason": {"onboarding, agreed"}})
	if status != http.StatusOK || !strings.Contains(body, "PIM request "+p.Name+" approved") {
		t.Fatalf("peer approving: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) { g.Expect(w.pimPhase(g, p.Name)).To(Equal(claiimv1.PIMActive)) })
	_, body = admin.get("/pim/" + p.Name)
	for _, want := range []string{`<span class="Active">Active</span>`, `data-expires="`, peerUser, "onboarding, agreed"} {
		if !strings.Contains(body, want) {
			t.Errorf("admin's view of the approved request lacks %q\n%s", want, body)
		}
	}

	// Admin ends the session early from its page.
	status, body = admin.post("/pim/"+p.Name+"/revoke", url.Values{"reason": {"done early"}, "from": {"detail"}})
	if status != http.StatusOK || !strings.Contains(body, "PIM request "+p.Name+" revoked") {
		t.Fatalf("revoking: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) { g.Expect(w.pimPhase(g, p.Name)).To(Equal(claiimv1.PIMRevoked)) })
}

// Admin lacks the verb approve: the button is there, disabled, saying so.
func TestPIMApproveDisabledWithoutTheRight(t *testing.T) {
	w := kube(t)
	reason := "console test " + suffix() + ": rotate a token"
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "pim-"}, Spec: claiimv1.PIMRequestSpec{Reason: reason}}
	if err := w.env.As(peerUser).Create(w.ctx, p); err != nil {
		t.Fatal(err)
	}
	admin := w.login(t, adminUser)
	_, body := admin.get("/pim")
	approve := form(section(body, "queue"), "/pim/"+p.Name+"/approve")
	if !strings.Contains(approve, "disabled") || !strings.Contains(approve, `class="why"`) ||
		!strings.Contains(approve, "approve on pimrequests") {
		t.Errorf("admin's queue: want a disabled approve form for %s saying why, got %q", p.Name, approve)
	}

	// Peer withdraws it from its page: a requester revokes their own.
	peer := w.login(t, peerUser)
	_, body = peer.get("/pim/" + p.Name)
	if form(body, "/pim/"+p.Name+"/revoke") == "" {
		t.Fatalf("peer's own pending request offers no revoke:\n%s", body)
	}
	if status, body := peer.post("/pim/"+p.Name+"/revoke", url.Values{"reason": {"not needed after all"}, "from": {"detail"}}); status != http.StatusOK ||
		!strings.Contains(body, "revoked") {
		t.Fatalf("peer revoking: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) { g.Expect(w.pimPhase(g, p.Name)).To(Equal(claiimv1.PIMRevoked)) })
}

func TestPIMPageRefusesPlainly(t *testing.T) {
	w := kube(t)
	admin := w.login(t, adminUser)
	status, body := admin.post("/pim", url.Values{"reason": {"short"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "spec.reason") {
		t.Errorf("a too-short reason: %d, want 422 with the apiserver's words\n%s", status, body)
	}
	status, body = admin.post("/pim/pim-x/approve", url.Values{})
	if status != http.StatusBadRequest || !strings.Contains(body, "give a reason") {
		t.Errorf("a decision without a reason: %d\n%s", status, body)
	}
	nobody := w.login(t, nobodyUser)
	status, body = nobody.get("/pim")
	if status != http.StatusForbidden || !strings.Contains(body, "cannot list resource") {
		t.Errorf("PIM as a person without a role: %d, want 403 with the apiserver's words\n%s", status, body)
	}
}
