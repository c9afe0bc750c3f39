package console_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// holdCall writes the approval.requested row a gate writes when a
// RequireApproval rule holds an agent's call, and waits for the manager
// to materialize it as an ActionApproval.
func (w *world) holdCall(t *testing.T, id string, callCtx map[string]any) *claiimv1.ActionApproval {
	t.Helper()
	cw, err := chron.NewWriter(w.ctx, w.env.Chron, chron.WriterOptions{Stream: "gate/console-approvals"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cw.Close() }()
	now := time.Now().UTC()
	if _, err := cw.Write(w.ctx, &chron.Record{Kind: chron.KindApprovalRequested, RequestID: id, AgentName: "payments-bot",
		AgentNamespace: "default", AgentUID: "uid-payments-bot", Org: "engineering", Anchor: adminUser,
		Actor: "serviceaccount:default/payments-bot", Action: "payment:send", Outcome: chron.OutcomeDeny,
		Reason: api.ReasonApprovalRequired, SkillVersionID: "sv-payments-1",
		Context: map[string]any{"approval_id": id, "context_digest": decide.ContextDigest(callCtx), "context": callCtx,
			"approvals_required": 1, "policy": "big-payments", "rule": "approve-over-1000",
			"agent_service_account": "system:serviceaccount:default:payments-bot",
			"requested_at":          now.Format(time.RFC3339), "expires_at": now.Add(time.Hour).Format(time.RFC3339)}}); err != nil {
		t.Fatal(err)
	}
	ap := &claiimv1.ActionApproval{}
	eventually(t, func(g Gomega) {
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKey{Namespace: "default", Name: id}, ap)).To(Succeed())
	})
	return ap
}

// An approver approves a held call on the Approvals page; an auditor, who
// may read it but not approve it, sees the disabled button and why; a
// decision admission refuses shows in the webhook's words.
func TestApprovalsPage(t *testing.T) {
	w := kube(t)
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "console-test-action-approver"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "claiim-action-approver"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: peerUser}}}
	if err := w.env.Client.Create(w.ctx, crb); err != nil {
		t.Fatal(err)
	}
	const id = "0193a1b2-0000-7000-8000-00000000c0a1"
	ap := w.holdCall(t, id, map[string]any{"amount": 2500.0, "to": "ACME Ltd", "api_key": "sk-live-secret"})
	row := "approval-default-" + id
	auditor, peer := w.login(t, auditorUser), w.login(t, peerUser)

	// The auditor reads it all, and why they cannot decide.
	status, body := auditor.get("/approvals")
	if status != http.StatusOK {
		t.Fatalf("auditor's approvals page: %d\n%s", status, body)
	}
	r := heldRow(body, row)
	for _, want := range []string{"payment:send", "default/payments-bot", ap.Spec.ContextDigest, "ACME Ltd", "sv-payments-1",
		"big-payments/approve-over-1000", "system:serviceaccount:default:payments-bot", `data-expires="`, "0 of 1",
		auditorUser + " may not approve agents&#39; calls in namespace default", "claiim-action-approver"} {
		if !strings.Contains(r, want) {
			t.Errorf("the auditor's row lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r, "sk-live-secret") {
		t.Errorf("the row shows the context's secret in clear:\n%s", r)
	}
	if f := form(r, "/approvals/default/"+id+"/approve"); f == "" || !strings.Contains(f, "disabled") {
		t.Errorf("the auditor's approve form is not disabled: %q", f)
	}
	if status, body = auditor.post("/approvals/default/"+id+"/approve", url.Values{"reason": {"trying anyway"}}); status != http.StatusForbidden {
		t.Errorf("the auditor approving: %d, want 403\n%s", status, body)
	}

	// The approver's button works, and approving stamps them.
	eventually(t, func(g Gomega) {
		_, body := peer.get("/approvals")
		f := form(heldRow(body, row), "/approvals/default/"+id+"/approve")
		g.Expect(f).NotTo(BeEmpty())
		g.Expect(f).NotTo(ContainSubstring("disabled"))
	})
	status, body = peer.post("/approvals/default/"+id+"/approve", url.Values{"reason": {"invoice 4711 checked"}})
	if status != http.StatusOK || !strings.Contains(body, "approved payment:send of agent default/payments-bot: Approved (1 of 1 approvals)") {
		t.Fatalf("the approver approving: %d\n%s", status, body)
	}
	got := &claiimv1.ActionApproval{}
	if err := w.env.Client.Get(w.ctx, client.ObjectKeyFromObject(ap), got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Approvers(), []string{peerUser}) {
		t.Errorf("approvers are %v; want [%s]", got.Approvers(), peerUser)
	}
	r = heldRow(body, row)
	if !strings.Contains(r, `<span class="Approved">Approved</span>`) || !strings.Contains(r, "1 of 1") || form(r, "/approvals/default/"+id+"/deny") != "" {
		t.Errorf("the approved row still offers decisions or lacks its state:\n%s", r)
	}

	// A decision admission refuses comes back in the webhook's words.
	status, body = peer.post("/approvals/default/"+id+"/deny", url.Values{"reason": {"changed my mind"}})
	if status != http.StatusForbidden || !strings.Contains(body, "this approval is already Approved") {
		t.Errorf("denying an approved call: %d, want 403 with the webhook's words\n%s", status, body)
	}
}

// heldRow is the Approvals page's table row with id in body.
func heldRow(body, id string) string {
	i := strings.Index(body, `<tr id="`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := body[i:]
	if j := strings.Index(rest, "</tr>"); j >= 0 {
		return rest[:j]
	}
	return rest
}
