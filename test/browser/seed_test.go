package browser

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/test/consoletest"
)

// The onboarding guide's steps 4 to 11 in the console, clicked by its two
// people in their own browsers; step 10 is the agent calling the gate with
// the token the console showed once.
func TestOnboardingInTheConsole(t *testing.T) {
	tokenReader(t, consoletest.Admin, "default")
	admin, peer := open(t, consoletest.Admin), open(t, consoletest.Peer)
	admin.screenshot("console-login")
	admin.login()
	peer.login()
	if loc := get(admin, chromedp.Location()); !strings.HasSuffix(loc, "/agents") {
		t.Errorf("logging in lands on %s, want the Agents page", loc)
	}

	// Step 4: admin asks for elevation; peer approves it.
	admin.visit("/pim")
	admin.run(
		chromedp.SetValue(chromedp.CSS(`#pim-reason`), "Initial onboarding -- setting up first agent fleet"),
		chromedp.Click(chromedp.CSS(`#request button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	admin.expectText(`#mine`, "Pending")
	admin.expectText(`#queue`, "No") // admin's own request is not in admin's queue
	peer.visit("/pim")
	peer.expectText(`#queue`, consoletest.Admin)
	peer.run(chromedp.SetValue(chromedp.CSS(`#queue form[action$="/approve"] input[name=reason]`), "ok, onboarding"))
	peer.screenshot("console-pim-queue")
	peer.run(
		chromedp.Click(chromedp.CSS(`#queue form[action$="/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	admin.eventually("/pim", `#mine`, "Active")
	admin.screenshot("console-pim-active")

	// Step 5: an AI Org.
	admin.create("/orgs/new", map[string]string{"#name": "engineering", "#displayName": "Engineering"})
	// Step 7: a Skill, version 1.
	admin.create("/skills/new", map[string]string{"#name": "deploy-bot", "#org": "engineering", "#displayName": "Deploy Bot",
		"#agentEmail": "deploy-bot@yourcompany.com", "#allowedActions": "deploy:staging", "#forbiddenActions": "deploy:production"})
	admin.screenshot("console-skill")
	// Step 8: a Policy that denies production deploys for every agent.
	admin.create("/policies/new", map[string]string{"#name": "no-production-deploys", "#displayName": "No production deploys",
		`[id="rule.0.effect"]`: "Deny", `[id="rule.0.actions"]`: "deploy:production"})
	// Step 9: the agent; its token is shown once.
	admin.create("/agents/new", map[string]string{"#namespace": "default", "#name": "prod-deploy-bot", "#displayName": "Prod Deploy Bot",
		"#org": "engineering", "#accountabilityAnchor": consoletest.Admin, "#skill": "deploy-bot", "#version": "1"})
	token := strings.TrimSpace(admin.text(`.once pre.secret`))
	if len(token) < 20 {
		t.Fatalf("no token shown after provisioning: %q", token)
	}
	admin.screenshot("console-agent-token")
	admin.eventually("/agents/default/prod-deploy-bot", `main`, "Active")
	if strings.Contains(admin.text(`main`), token) {
		t.Fatal("the token is shown a second time")
	}

	// Step 10: the agent asks the gate, with the token it was given.
	agent := &claiimv1.Agent{}
	if err := world.Env.Client.Get(world.Ctx, client.ObjectKey{Namespace: "default", Name: "prod-deploy-bot"}, agent); err != nil {
		t.Fatal(err)
	}
	for action, want := range map[string]string{"deploy:staging": "ALLOW", "deploy:production": "DENY"} {
		if got := validate(t, token, agent.Status.SkillVersionID, action); got != want {
			t.Errorf("%s: the gate answered %s, want %s", action, got, want)
		}
	}

	// Step 11: the Chron proof, one ALLOW and one DENY, expanded.
	admin.visit("/chron?agent=default/prod-deploy-bot&kind=decision")
	rows := admin.text(`#chron-rows tbody`)
	for _, want := range []string{"deploy:staging", "ALLOW", "deploy:production", "DENY", "no-production-deploys@1", consoletest.Admin} {
		if !strings.Contains(rows, want) {
			t.Errorf("the Chron page lacks %q:\n%s", want, rows)
		}
	}
	admin.run(chromedp.Click(chromedp.CSS(`#chron-rows tr.detail details summary`)), chromedp.WaitVisible(chromedp.CSS(`#chron-rows details[open] dl`)))
	if detail := admin.text(`#chron-rows details[open]`); !strings.Contains(detail, "Hash") || !strings.Contains(detail, "deploy-bot") {
		t.Errorf("the expanded row lacks the whole decision:\n%s", detail)
	}
	admin.screenshot("console-chron")
}

// tokenReader lets user read Secrets in namespace, as the onboarding's
// provisioner who is shown the new agent's token.
func tokenReader(t *testing.T, user, namespace string) {
	t.Helper()
	c := world.Env.Client
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "token-reader", Namespace: namespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "token-reader", Namespace: namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	for _, o := range []client.Object{role, binding} {
		if err := c.Create(world.Ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// validate asks the gate as the agent and returns the outcome.
func validate(t *testing.T, token, skillVersionID, action string) string {
	t.Helper()
	r, err := world.Validate(token, api.ValidateRequest{Action: action, Context: map[string]any{"target": "eu-1"}, SkillVersionID: skillVersionID})
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(r.Outcome)
}

// visit opens path on the console.
func (p *person) visit(path string) {
	p.t.Helper()
	p.run(chromedp.Navigate(world.Server.URL+path), chromedp.WaitVisible(chromedp.CSS(`#whoami`)))
}

// expectText fails unless the element sel's text contains want.
func (p *person) expectText(sel, want string) {
	p.t.Helper()
	if got := p.text(sel); !strings.Contains(got, want) {
		p.t.Fatalf("%s's %s does not say %q:\n%s", p.user, sel, want, got)
	}
}

// eventually reloads path until sel's text contains want.
func (p *person) eventually(path, sel, want string) {
	p.t.Helper()
	NewWithT(p.t).Eventually(func() string {
		p.visit(path)
		return p.text(sel)
	}).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).Should(ContainSubstring(want), "%s on %s", p.user, path)
}

// create fills the form at path (CSS selector → value) and clicks Create;
// the next page must say it was done, not show an error.
func (p *person) create(path string, fields map[string]string) {
	p.t.Helper()
	p.visit(path)
	var steps []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		steps = append(steps, chromedp.SetValue(chromedp.CSS(sel), v))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS(`button[name=do][value=create]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash, .error`)))
	p.run(steps...)
	if errs := get(p, chromedp.Nodes(chromedp.CSSAll(`.error`), chromedp.AtLeast(0))); len(errs) > 0 {
		p.t.Fatalf("creating at %s: %s", path, p.text(`.error`))
	}
}
