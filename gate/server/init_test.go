package server_test

import (
	"errors"
	"fmt"
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
)

const prompt = "You deploy services to staging. Never touch production."

// initRow is the init row the gate recorded under id.
func (w *world) initRow(id any) chron.Row {
	GinkgoHelper()
	rows, _, err := chron.List(ctx, pool, chron.Filter{Agent: w.agent.Name, Namespace: w.ns, Kind: string(chron.KindInit), Limit: 100})
	Expect(err).NotTo(HaveOccurred())
	for _, r := range rows {
		if r.ID == id {
			return r
		}
	}
	Fail("no init row " + id.(string))
	return chron.Row{}
}

var _ = Describe("POST /v/init", func() {
	It("serves the pinned skill version's display name, agent email and system prompt, and records the init", func() {
		w := newWorld(worldOpts{accepted: true, prompt: prompt})
		status, id := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusOK), "%v", id)
		Expect(id).To(HaveKeyWithValue("skill", w.skill))
		Expect(id).To(HaveKeyWithValue("skill_version", BeEquivalentTo(1)))
		Expect(id).To(HaveKeyWithValue("skill_display_name", "Deploy Bot"))
		Expect(id).To(HaveKeyWithValue("agent_email", "deploy-bot@yourcompany.com"))
		Expect(id).To(HaveKeyWithValue("system_prompt", prompt))
		Expect(id).To(HaveKeyWithValue("skill_version_ok", true))
		Expect(id).NotTo(HaveKey("message"))

		row := w.initRow(id["decision_id"])
		Expect(row.Outcome).To(Equal("ALLOW"))
		Expect(row.Reason).To(Equal("AGENT_ACTIVE"))
		Expect(row.Anchor).To(Equal(anchor))
		Expect(row.SkillVersionID).To(Equal(w.svID))
		Expect(row.SkillDigest).To(Equal(id["skill_digest"]), "the digest binds the prompt the agent was given")
		Expect(row.Context).To(HaveKeyWithValue("agent_email", "deploy-bot@yourcompany.com"))
		Expect(row.Context).To(HaveKeyWithValue("presented_skill_version_id", w.svID))
		Expect(id["chron_id"]).To(Equal(fmt.Sprintf("%s/%d", row.Stream, row.Seq)))
	})

	It("tells an agent presenting another skill version what every action will get", func() {
		w := newWorld(worldOpts{accepted: true})
		status, id := post("/v/init", w.token, map[string]any{"skill_version_id": w.skill + "-v2-00000000"})
		Expect(status).To(Equal(http.StatusOK))
		Expect(id).To(HaveKeyWithValue("skill_version_ok", false))
		Expect(id).To(HaveKeyWithValue("skill_version_id", w.svID))
		Expect(id["message"]).To(ContainSubstring("SKILL_VERSION_MISMATCH"))
		Expect(w.initRow(id["decision_id"]).Context).To(HaveKeyWithValue("presented_skill_version_id", w.skill+"-v2-00000000"))
	})

	It("refuses an agent that is not Active with 403 and its reason, recorded", func() {
		w := newWorld(worldOpts{accepted: false})
		status, body := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
		Expect(body).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
		Expect(body["message"]).To(ContainSubstring(anchor), "the message says who must accept")
		Expect(body).NotTo(HaveKey("system_prompt"))
		row := w.initRow(body["decision_id"])
		Expect(row.Outcome).To(Equal("DENY"))
		Expect(row.Reason).To(Equal("AGENT_INACTIVE"))

		By("the Go client's Denied carries the row's id")
		_, err := gateclient.New(gateURL+"/v", w.token, w.svID).Init(ctx)
		var denied *gateclient.Denied
		Expect(errors.As(err, &denied)).To(BeTrue())
		Expect(denied.Status).To(Equal(http.StatusForbidden))
		Expect(denied.Reason).To(Equal("AGENT_INACTIVE"))
		Expect(w.initRow(denied.DecisionID).Reason).To(Equal("AGENT_INACTIVE"))

		By("suspended: 403 AGENT_INACTIVE")
		w.update(func(a *claiimv1.Agent) {
			a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
		})
		w.waitPhase(claiimv1.AgentActive)
		Eventually(func(g Gomega) {
			status, _ := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
			g.Expect(status).To(Equal(http.StatusOK))
		}).Should(Succeed())
		w.update(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })
		Eventually(func(g Gomega) {
			status, body := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
			g.Expect(status).To(Equal(http.StatusForbidden))
			g.Expect(body).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
			g.Expect(body["message"]).To(ContainSubstring("uspended"))
		}).Should(Succeed())

		By("decommissioned: its token is revoked, so 401")
		w.update(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleDecommissioned })
		Eventually(func(g Gomega) {
			status, body := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
			g.Expect(status).To(Equal(http.StatusUnauthorized))
			g.Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
			g.Expect(body["decision_id"]).NotTo(BeEmpty())
		}).Should(Succeed())
	})

	It("refuses a malformed body with 400 naming the field, recorded", func() {
		w := newWorld(worldOpts{accepted: true})
		status, body := post("/v/init", w.token, map[string]any{"skill_version_id": 7})
		Expect(status).To(Equal(http.StatusBadRequest))
		Expect(body).To(HaveKeyWithValue("field", "skill_version_id"))
		Expect(w.initRow(body["decision_id"]).Reason).To(Equal("BAD_REQUEST"))
		status, _ = post("/v/init", w.token, map[string]any{})
		Expect(status).To(Equal(http.StatusOK), "an empty request is an init without a presented version")
	})

	It("gives the Go client the identity, and Denied.DecisionID for a DENY", func() {
		w := newWorld(worldOpts{accepted: true, prompt: prompt})
		c := gateclient.New(gateURL+"/v", w.token, w.svID)
		id, err := c.Init(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(id.AgentEmail).To(Equal("deploy-bot@yourcompany.com"))
		Expect(id.SystemPrompt).To(Equal(prompt))
		Expect(id.SkillDisplayName).To(Equal("Deploy Bot"))
		Expect(w.initRow(id.DecisionID).AgentUID).To(Equal(string(w.agent.UID)))

		_, err = c.Validate(ctx, "deploy:production", map[string]any{"target": "eu-prod-1"})
		var denied *gateclient.Denied
		Expect(errors.As(err, &denied)).To(BeTrue())
		Expect(denied.DecisionID).NotTo(BeEmpty())
		Expect(w.rows()).To(ContainElement(And(HaveField("ID", denied.DecisionID), HaveField("Reason", "SKILL_FORBIDDEN"),
			HaveField("Kind", chron.KindDecision))))
	})
})
