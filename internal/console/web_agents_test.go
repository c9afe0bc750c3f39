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

// agent provisions the seed's Deploy Bot (a skill of its own and an
// agent in namespace default anchored to anchor) as admin under PIM, and
// waits for phase.
func (w *world) agent(t *testing.T, anchor string, phase claiimv1.AgentPhase) *claiimv1.Agent {
	t.Helper()
	w.orgs(t)
	sfx := suffix()
	skill := &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "web-deploy-bot-" + sfx}, Spec: claiimv1.SkillSpec{
		Org: "engineering", DisplayName: "Deploy Bot", Versions: []claiimv1.SkillVersion{{
			Version: 1, AgentEmail: "deploy-bot@yourcompany.com", SystemPrompt: "You deploy services to staging.",
			AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}}}}}
	a := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "web-bot-" + sfx, Namespace: "default"}, Spec: claiimv1.AgentSpec{
		Org: "engineering", DisplayName: "Prod Deploy Bot " + sfx, AccountabilityAnchor: claiimv1.Username(anchor),
		SkillRef: claiimv1.SkillRef{Name: skill.Name, Version: 1}}}
	for _, o := range []client.Object{skill, a} {
		if err := w.env.As(adminUser).Create(w.ctx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
	w.waitAgent(t, a, phase)
	return a
}

// waitAgent waits for a's phase and returns it as it is then.
func (w *world) waitAgent(t *testing.T, a *claiimv1.Agent, phase claiimv1.AgentPhase) *claiimv1.Agent {
	t.Helper()
	got := &claiimv1.Agent{}
	eventually(t, func(g Gomega) {
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKeyFromObject(a), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase))
	})
	return got
}

func TestAgentLifecycleInTheConsole(t *testing.T) {
	w := kube(t)
	a := w.waitAgent(t, w.agent(t, adminUser, claiimv1.AgentActive), claiimv1.AgentActive)
	if a.Status.Token == nil {
		t.Fatal("an Active agent without a token in its status")
	}
	admin := w.login(t, adminUser)
	page := "/agents/default/" + a.Name
	if _, body := admin.get("/agents"); !strings.Contains(body, `href="`+page+`"`) {
		t.Errorf("the agents page does not link %s\n%s", page, body)
	}
	_, body := admin.get(page)
	for _, want := range []string{`<span class="Active">Active</span>`, `<td class="mono" id="gate-url">http://gate.test/v</td>`,
		`id="token-id">` + a.Status.Token.ID + "<", "accepted", a.Spec.SkillRef.Name + " version 1", a.Status.SkillVersionID} {
		if !strings.Contains(body, want) {
			t.Errorf("the agent's page lacks %q\n%s", want, body)
		}
	}

	status, body := admin.post(page+"/suspend", url.Values{})
	if status != http.StatusOK || !strings.Contains(body, "agent default/"+a.Name+" suspended") {
		t.Fatalf("suspending: %d\n%s", status, body)
	}
	w.waitAgent(t, a, claiimv1.AgentSuspended)
	if _, body := admin.get(page); form(body, page+"/suspend") == "" || !strings.Contains(form(body, page+"/suspend"), "already suspended") {
		t.Errorf("a suspended agent's suspend button is not disabled as such\n%s", body)
	}
	if status, body := admin.post(page+"/activate", url.Values{}); status != http.StatusOK || !strings.Contains(body, "activated") {
		t.Fatalf("activating under PIM: %d\n%s", status, body)
	}
	w.waitAgent(t, a, claiimv1.AgentActive)

	if status, body := admin.post(page+"/rotate", url.Values{"value": {"TICKET-" + a.Name}}); status != http.StatusOK || !strings.Contains(body, "token rotation requested") {
		t.Fatalf("rotating: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) {
		got := &claiimv1.Agent{}
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKeyFromObject(a), got)).To(Succeed())
		g.Expect(got.Status.Token).NotTo(BeNil())
		g.Expect(got.Status.Token.ID).NotTo(Equal(a.Status.Token.ID))
	})

	// Decommissioning is permanent: the console wants it confirmed.
	status, body = admin.post(page+"/decommission", url.Values{})
	if status != http.StatusBadRequest || !strings.Contains(body, "decommissioning is permanent") {
		t.Errorf("decommissioning unconfirmed: %d\n%s", status, body)
	}
	if status, body := admin.post(page+"/decommission", url.Values{"confirm": {"yes"}}); status != http.StatusOK || !strings.Contains(body, "decommissioned") {
		t.Fatalf("decommissioning: %d\n%s", status, body)
	}
	w.waitAgent(t, a, claiimv1.AgentDecommissioned)
	if _, body := admin.get(page); !strings.Contains(form(body, page+"/activate"), "decommissioned, which is permanent") {
		t.Errorf("a decommissioned agent's page still offers to activate it\n%s", body)
	}
}

// Suspending is a safety action anyone allowed to patch agents may take
// at once; resuming needs a PIM session, and the person reads the
// webhook's refusal as it wrote it.
func TestAgentActionsWithoutAPIMSession(t *testing.T) {
	w := kube(t)
	a := w.agent(t, adminUser, claiimv1.AgentActive)
	sa := w.serviceAccountAdmin(t)
	page := "/agents/default/" + a.Name
	_, body := sa.get(page)
	if !strings.Contains(body, "You have no active PIM session") {
		t.Errorf("the page does not warn a person without a PIM session\n%s", body)
	}
	if status, body := sa.post(page+"/suspend", url.Values{}); status != http.StatusOK || !strings.Contains(body, "suspended") {
		t.Fatalf("suspending without PIM (a safety action): %d\n%s", status, body)
	}
	w.waitAgent(t, a, claiimv1.AgentSuspended)
	status, body := sa.post(page+"/activate", url.Values{})
	if status != http.StatusForbidden || !strings.Contains(body, "needs an active PIM session for "+sa.user) {
		t.Fatalf("activating without PIM: %d, want 403 with the webhook's words\n%s", status, body)
	}
	if !strings.Contains(body, `class="error"`) {
		t.Errorf("the refusal is not shown as an error\n%s", body)
	}
}

// Only the anchor accepts, as themself; everyone else sees why not.
func TestAgentAcceptedByItsAnchorOnly(t *testing.T) {
	w := kube(t)
	a := w.agent(t, peerUser, claiimv1.AgentInactive)
	page := "/agents/default/" + a.Name
	admin, peer := w.login(t, adminUser), w.login(t, peerUser)
	if _, body := admin.get(page); !strings.Contains(form(body, page+"/accept"), "only the accountability anchor "+peerUser+" can accept") {
		t.Errorf("admin's accept button is not disabled with the reason\n%s", form(body, page+"/accept"))
	}
	if _, body := peer.get(page); strings.Contains(form(body, page+"/accept"), "disabled") {
		t.Errorf("the anchor's accept button is disabled\n%s", form(body, page+"/accept"))
	}
	if status, body := peer.post(page+"/accept", url.Values{}); status != http.StatusOK || !strings.Contains(body, "accepted by "+peerUser) {
		t.Fatalf("the anchor accepting: %d\n%s", status, body)
	}
	got := w.waitAgent(t, a, claiimv1.AgentActive)
	if got.Annotations[claiimv1.AnnotationAnchorAccepted] != peerUser {
		t.Errorf("accepted by %q, want %s", got.Annotations[claiimv1.AnnotationAnchorAccepted], peerUser)
	}
}
