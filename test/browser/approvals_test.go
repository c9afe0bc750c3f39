package browser

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/test/consoletest"
)

// An action approver approves a call a RequireApproval rule held, on the
// console's Approvals page (the screenshot docs/console.md shows).
func TestApprovalInTheConsole(t *testing.T) {
	const id = "0193a1b2-0000-7000-8000-0000000b0a11"
	c := world.Env.Client
	if err := c.Create(world.Ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "browser-action-approver"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "claiim-action-approver"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: consoletest.Peer}}}); err != nil {
		t.Fatal(err)
	}
	// The row a gate writes when it holds the call; the manager makes the ActionApproval.
	w, err := chron.NewWriter(world.Ctx, world.Env.Chron, chron.WriterOptions{Stream: "gate/browser-approvals"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	call, now := map[string]any{"replicas": 50.0, "service": "checkout"}, time.Now().UTC()
	if _, err := w.Write(world.Ctx, &chron.Record{Kind: chron.KindApprovalRequested, RequestID: id, AgentName: "prod-deploy-bot",
		AgentNamespace: "default", AgentUID: "uid-prod-deploy-bot", Org: "engineering", Anchor: consoletest.Admin,
		Actor: "serviceaccount:default/prod-deploy-bot", Action: "deploy:staging", Outcome: chron.OutcomeDeny,
		Reason: api.ReasonApprovalRequired, SkillVersionID: "sv-deploy-bot-1",
		Context: map[string]any{"approval_id": id, "context_digest": decide.ContextDigest(call), "context": call,
			"approvals_required": 1, "policy": "big-deploys", "rule": "approve-big",
			"requested_at": now.Format(time.RFC3339), "expires_at": now.Add(10 * time.Minute).Format(time.RFC3339)}}); err != nil {
		t.Fatal(err)
	}
	peer := open(t, consoletest.Peer)
	peer.login()
	peer.eventually("/approvals", `#approvals`, "deploy:staging")
	peer.run(chromedp.SetValue(chromedp.CSS(`#approvals form[action$="/approve"] input[name=reason]`), "checkout scale-up agreed"))
	peer.screenshot("console-approvals")
	peer.run(
		chromedp.Click(chromedp.CSS(`#approvals form[action$="/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	peer.expectText(`#approvals`, "Approved")
	ap := &claiimv1.ActionApproval{}
	if err := c.Get(world.Ctx, client.ObjectKey{Namespace: "default", Name: id}, ap); err != nil {
		t.Fatal(err)
	}
	if got := ap.Approvers(); len(got) != 1 || got[0] != consoletest.Peer {
		t.Errorf("approvers are %v; want [%s]", got, consoletest.Peer)
	}
}
