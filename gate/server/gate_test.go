package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
	"github.com/claiim/claiim-operator/gate/token"
	"github.com/claiim/claiim-operator/test/testenv"
)

const anchor = "admin@claiim.io"

func uniq(p string) string { return p + "-" + utilrand.String(6) }

// world is one test's seed objects: an org, the Deploy Bot skill and an
// agent with its token.
type world struct {
	org, skill, ns string
	agent          *claiimv1.Agent
	token, svID    string
}

type worldOpts struct {
	accepted  bool
	allowed   []claiimv1.ActionPattern
	forbidden []claiimv1.ActionPattern
	prompt    string // the skill version's system prompt
}

func newWorld(o worldOpts) *world {
	GinkgoHelper()
	if o.allowed == nil {
		o.allowed = []claiimv1.ActionPattern{"deploy:staging"}
	}
	if o.forbidden == nil {
		o.forbidden = []claiimv1.ActionPattern{"deploy:production"}
	}
	w := &world{org: uniq("engineering"), skill: uniq("deploy-bot")}
	Expect(k8s.Create(ctx, &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: w.org}, Spec: claiimv1.AIOrgSpec{DisplayName: "Engineering"}})).To(Succeed())
	Expect(k8s.Create(ctx, &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: w.skill}, Spec: claiimv1.SkillSpec{
		Org: claiimv1.OrgName(w.org), DisplayName: "Deploy Bot",
		Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "deploy-bot@yourcompany.com", SystemPrompt: o.prompt,
			AllowedActions: o.allowed, ForbiddenActions: o.forbidden}},
	}})).To(Succeed())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	w.ns = ns.Name
	w.agent = &claiimv1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "prod-deploy-bot"},
		Spec: claiimv1.AgentSpec{Org: claiimv1.OrgName(w.org), DisplayName: "Prod Deploy Bot", AccountabilityAnchor: anchor,
			SkillRef: claiimv1.SkillRef{Name: w.skill, Version: 1}},
	}
	if o.accepted {
		w.agent.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
	}
	Expect(k8s.Create(ctx, w.agent)).To(Succeed())
	want := claiimv1.AgentInactive
	if o.accepted {
		want = claiimv1.AgentActive
	}
	w.waitPhase(want)
	sec := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: controllers.TokenSecretName(w.agent.Name)}, sec)).To(Succeed())
	w.token, w.svID = string(sec.Data[claiimv1.SecretKeyAgentToken]), string(sec.Data[claiimv1.SecretKeySkillVersionID])
	Expect(w.svID).NotTo(BeEmpty())
	// The gate's informers, not only the apiserver, must know the token
	// before a test calls with it (a loaded machine shows the lag).
	id, ok := token.ID(w.token)
	Expect(ok).To(BeTrue())
	Eventually(func(g Gomega) {
		snap := src.Snapshot()
		g.Expect(snap).NotTo(BeNil())
		_, found := snap.AgentByToken(id)
		g.Expect(found).To(BeTrue(), "the gate does not know token %s yet", id)
	}).Should(Succeed())
	return w
}

func (w *world) waitPhase(p claiimv1.AgentPhase) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent)).To(Succeed())
		g.Expect(w.agent.Status.Phase).To(Equal(p))
	}).Should(Succeed())
}

func (w *world) update(mutate func(a *claiimv1.Agent)) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent); err != nil {
			return err
		}
		mutate(w.agent)
		return k8s.Update(ctx, w.agent)
	})).To(Succeed())
}

// validate posts to /v/validate and returns the status and decoded body.
func validate(token string, body any) (int, map[string]any) {
	GinkgoHelper()
	return post("/v/validate", token, body)
}

func post(path, token string, body any) (int, map[string]any) {
	GinkgoHelper()
	b, err := json.Marshal(body)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateURL+path, bytes.NewReader(b))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	Expect(json.Unmarshal(raw, &out)).To(Succeed(), string(raw))
	return resp.StatusCode, out
}

func (w *world) ask(action string, actx map[string]any) (int, map[string]any) {
	GinkgoHelper()
	return validate(w.token, map[string]any{"action": action, "context": actx, "skill_version_id": w.svID})
}

func (w *world) rows() []chron.Row {
	GinkgoHelper()
	rows, _, err := chron.List(ctx, pool, chron.Filter{Agent: w.agent.Name, Namespace: w.ns, Limit: 100})
	Expect(err).NotTo(HaveOccurred())
	return rows
}

var _ = Describe("The gate", func() {
	It("answers the seed's rehearsal: ALLOW OWN_AIORG for staging, DENY POLICY_DENY for production, one Chron row each", func() {
		w := newWorld(worldOpts{accepted: true})
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-production-deploys")}, Spec: claiimv1.PolicySpec{
			Org: claiimv1.OrgName(w.org), DisplayName: "No production deploys",
			Rules: []claiimv1.PolicyRule{{Name: "deny-prod", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}},
		}}
		Expect(k8s.Create(ctx, pol)).To(Succeed())

		var body map[string]any
		asked := 0 // the gate may answer before it sees the policy: every answer has its row
		Eventually(func(g Gomega) {
			var status int
			status, body = w.ask("deploy:production", map[string]any{"target": "eu-prod-1"})
			asked++
			g.Expect(status).To(Equal(http.StatusForbidden))
			g.Expect(body["reason"]).To(Equal("POLICY_DENY"))
		}).Should(Succeed())
		Expect(body["outcome"]).To(Equal("DENY"))
		Expect(body["skill_rules"]).To(ContainElement("forbidden:deploy:production"), "the double lock lists the skill too")
		Expect(body["policies"]).To(ContainElement(HaveKeyWithValue("name", pol.Name)))
		Expect(body["chron_id"]).NotTo(BeEmpty())

		status, allow := w.ask("deploy:staging", map[string]any{"target": "eu-staging-1"})
		Expect(status).To(Equal(http.StatusOK))
		Expect(allow).To(HaveKeyWithValue("outcome", "ALLOW"))
		Expect(allow).To(HaveKeyWithValue("reason", "OWN_AIORG"))

		rows := w.rows()
		Expect(rows).To(HaveLen(asked+1), "exactly one row per decision")
		byID := map[string]chron.Row{}
		for _, r := range rows {
			byID[r.ID] = r
		}
		deny, ok := byID[body["decision_id"].(string)]
		Expect(ok).To(BeTrue())
		Expect(deny.Outcome).To(Equal("DENY"))
		Expect(deny.Action).To(Equal("deploy:production"))
		Expect(deny.Anchor).To(Equal(anchor))
		Expect(deny.SkillVersionID).To(Equal(w.svID))
		Expect(deny.Policies).To(ContainElement(HaveField("Name", pol.Name)))
		Expect(deny.SkillRules).To(ContainElement("forbidden:deploy:production"))
		Expect(deny.Context).To(HaveKeyWithValue("target", "eu-prod-1"))
		ok2 := byID[allow["decision_id"].(string)]
		Expect(ok2.Outcome).To(Equal("ALLOW"))
		Expect(ok2.Reason).To(Equal("OWN_AIORG"))
	})

	Describe("every reason code through the HTTP API", func() {
		It("UNAUTHENTICATED: 401 for an unknown token, still recorded (counted in its interval's auth.refused row)", func() {
			status, body := validate("clm_0123456789abcdef_"+strings.Repeat("x", 43), map[string]any{"action": "deploy:staging", "skill_version_id": "x"})
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
			Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
			Expect(refusals.Flush(ctx)).To(Succeed())
			rows, _, err := chron.List(ctx, pool, chron.Filter{Kind: string(chron.KindAuthRefused), Outcome: "DENY", Limit: 500})
			Expect(err).NotTo(HaveOccurred())
			Expect(rows).To(ContainElement(And(HaveField("ID", body["decision_id"]), HaveField("Reason", "UNAUTHENTICATED"))))
		})
		It("UNAUTHENTICATED: 401 without any token", func() {
			status, body := validate("", map[string]any{"action": "deploy:staging"})
			Expect(status).To(Equal(http.StatusUnauthorized))
			Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
		})
		It("AGENT_INACTIVE: 403 until the anchor accepts", func() {
			w := newWorld(worldOpts{accepted: false})
			status, body := w.ask("deploy:staging", nil)
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
			Expect(body["message"]).To(ContainSubstring("INACTIVE"))
			Expect(body["message"]).To(ContainSubstring(anchor))
		})
		It("SKILL_VERSION_MISMATCH: 403 for another skill version id", func() {
			w := newWorld(worldOpts{accepted: true})
			status, body := validate(w.token, map[string]any{"action": "deploy:staging", "skill_version_id": w.skill + "-v2-00000000"})
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(HaveKeyWithValue("reason", "SKILL_VERSION_MISMATCH"))
		})
		It("SKILL_FORBIDDEN, NOT_PERMITTED and POLICY_ALLOW", func() {
			w := newWorld(worldOpts{accepted: true, allowed: []claiimv1.ActionPattern{"db:*:read"}, forbidden: []claiimv1.ActionPattern{"db:*:drop"}})
			status, body := w.ask("db:orders:drop", nil)
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(HaveKeyWithValue("reason", "SKILL_FORBIDDEN"))

			status, body = w.ask("db:orders:write", nil)
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(body).To(HaveKeyWithValue("reason", "NOT_PERMITTED"))

			Expect(k8s.Create(ctx, &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("writes")}, Spec: claiimv1.PolicySpec{
				Org: claiimv1.OrgName(w.org),
				Rules: []claiimv1.PolicyRule{{Name: "eu-writes", Effect: claiimv1.PolicyEffectAllow, Actions: []claiimv1.ActionPattern{"db:*:write"},
					Condition: `context.region == "eu"`}},
			}})).To(Succeed())
			Eventually(func(g Gomega) {
				status, body = w.ask("db:orders:write", map[string]any{"region": "eu"})
				g.Expect(status).To(Equal(http.StatusOK))
				g.Expect(body).To(HaveKeyWithValue("reason", "POLICY_ALLOW"))
			}).Should(Succeed())
			status, body = w.ask("db:orders:write", map[string]any{"region": "us"})
			Expect(body).To(HaveKeyWithValue("reason", "NOT_PERMITTED"))
		})
		It("CROSS_AIORG_GRANT: a skill of another org under an active grant, and under that org's Denies", func() {
			finance := uniq("finance")
			Expect(k8s.Create(ctx, &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: finance}})).To(Succeed())
			w := newWorld(worldOpts{accepted: true})
			ledger := uniq("ledger")
			Expect(k8s.Create(ctx, &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: ledger}, Spec: claiimv1.SkillSpec{Org: claiimv1.OrgName(finance),
				Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "ledger@yourcompany.com", AllowedActions: []claiimv1.ActionPattern{"ledger:read"}}}}})).To(Succeed())
			// Both sides' approvals as admission stamps them (the webhooks
			// are tested in controllers/admission).
			grant := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: uniq("grant"), Annotations: map[string]string{
				claiimv1.AnnotationGrantingApprovedBy: "cfo@claiim.io", claiimv1.AnnotationReceivingApprovedBy: "cto@claiim.io"}},
				Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: claiimv1.OrgName(finance), ReceivingOrg: claiimv1.OrgName(w.org),
					Skills: []string{ledger}, Duration: &metav1.Duration{Duration: time.Hour}}}
			Expect(k8s.Create(ctx, grant)).To(Succeed())
			w.update(func(a *claiimv1.Agent) { a.Spec.SkillRef.Name = ledger })
			var granted map[string]any
			Eventually(func(g Gomega) {
				_, granted = validate(w.token, map[string]any{"action": "ledger:read", "skill_version_id": ledgerID(g, ledger)})
				g.Expect(granted).To(HaveKeyWithValue("reason", "CROSS_AIORG_GRANT"))
			}).Should(Succeed())
			// The row belongs to the agent's own org, not the granting one:
			// whose Chron rows an auditor reads (docs/chron-api.md).
			Expect(w.rows()).To(ContainElement(And(HaveField("ID", granted["decision_id"]), HaveField("Org", w.org),
				HaveField("SkillVersionID", ContainSubstring(ledger)))))

			// The skill is lent with its owner's Denies, and a Deny of
			// "ledger" covers the sub-action "ledger:read".
			freeze := uniq("ledger-freeze")
			Expect(k8s.Create(ctx, &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: freeze}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(finance),
				Rules: []claiimv1.PolicyRule{{Name: "freeze", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"ledger"}}}}})).To(Succeed())
			Eventually(func(g Gomega) {
				status, body := validate(w.token, map[string]any{"action": "ledger:read", "skill_version_id": ledgerID(g, ledger)})
				g.Expect(status).To(Equal(http.StatusForbidden))
				g.Expect(body).To(HaveKeyWithValue("reason", "POLICY_DENY"))
				g.Expect(body["message"]).To(ContainSubstring(freeze + "/freeze"))
			}).Should(Succeed())
		})
		It("BAD_REQUEST: 400 naming the field", func() {
			w := newWorld(worldOpts{accepted: true})
			cases := []struct {
				body  any
				field string
			}{
				{map[string]any{"action": "Deploy Staging", "skill_version_id": w.svID}, "action"},
				{map[string]any{"action": "deploy:staging"}, "skill_version_id"},
				{map[string]any{"action": "deploy:staging", "skill_version_id": w.svID, "context": map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": 1}}}}}}, "context"},
				{map[string]any{"action": "deploy:staging", "skill_version_id": w.svID, "context": map[string]any{"s": strings.Repeat("x", 2000)}}, "context"},
				{map[string]any{"action": 7}, "action"},
				{map[string]any{"action": "deploy:staging", "unexpected": true}, "body"},
			}
			for _, c := range cases {
				status, body := validate(w.token, c.body)
				Expect(status).To(Equal(http.StatusBadRequest), "%v", c.body)
				Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
				Expect(body).To(HaveKeyWithValue("reason", "BAD_REQUEST"))
				Expect(body).To(HaveKeyWithValue("field", c.field), "%v: %v", c.body, body["message"])
			}
		})
	})

	It("denies a suspended agent within a second of the change", func() {
		w := newWorld(worldOpts{accepted: true})
		status, _ := w.ask("deploy:staging", nil)
		Expect(status).To(Equal(http.StatusOK))
		w.update(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })
		Eventually(func(g Gomega) {
			_, body := w.ask("deploy:staging", nil)
			g.Expect(body).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
		}, "1s").Should(Succeed())
	})

	It("answers 401 to a decommissioned agent's token", func() {
		w := newWorld(worldOpts{accepted: true})
		w.update(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleDecommissioned })
		Eventually(func(g Gomega) {
			status, body := w.ask("deploy:staging", nil)
			g.Expect(status).To(Equal(http.StatusUnauthorized))
			g.Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
		}).Should(Succeed())
	})

	It("serves /health, /ready and /v/init", func() {
		resp, err := http.Get(gateURL + "/health")
		Expect(err).NotTo(HaveOccurred())
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		Expect(string(b)).To(MatchJSON(`{"status":"ok"}`))
		resp, err = http.Get(gateURL + "/ready")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))

		w := newWorld(worldOpts{accepted: true})
		status, id := post("/v/init", w.token, map[string]any{"skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusOK))
		Expect(id).To(HaveKeyWithValue("agent", w.ns+"/prod-deploy-bot"))
		Expect(id).To(HaveKeyWithValue("org", w.org))
		Expect(id).To(HaveKeyWithValue("anchor", anchor))
		Expect(id).To(HaveKeyWithValue("skill_version_id", w.svID))
		Expect(id).To(HaveKeyWithValue("skill_version_ok", true))
		Expect(id).To(HaveKeyWithValue("active", true))
	})

	It("drives the seed's Option B with the Go client", func() {
		w := newWorld(worldOpts{accepted: true})
		c := gateclient.New(gateURL+"/v", w.token, w.svID)
		_, err := c.Init(ctx)
		Expect(err).NotTo(HaveOccurred())
		r, err := c.Validate(ctx, "deploy:staging", map[string]any{"target": "eu-staging-1"})
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Outcome).To(Equal("ALLOW"))
		_, err = c.Validate(ctx, "deploy:production", map[string]any{"target": "eu-prod-1"})
		Expect(gateclient.IsDenied(err)).To(BeTrue())
		var denied *gateclient.Denied
		Expect(errors.As(err, &denied)).To(BeTrue())
		Expect(denied.Reason).To(Equal("SKILL_FORBIDDEN"))

		By("an unreachable gate is a DENY, not an error to ignore")
		_, err = gateclient.New("http://127.0.0.1:1/v", w.token, w.svID).Validate(ctx, "deploy:staging", nil)
		Expect(gateclient.IsDenied(err)).To(BeTrue())
	})

	It("drives the seed's Option B snippet with the Python client", func() {
		py, err := exec.LookPath("python3")
		if err != nil {
			Skip("python3 is not installed")
		}
		w := newWorld(worldOpts{accepted: true})
		script := `
import asyncio, os
from claiim import CLAIIMClient

async def main():
    client = CLAIIMClient(
        gate_url=os.environ["GATE_URL"],
        agent_token=os.environ["AGENT_TOKEN"],
        skill_version_id=os.environ["SKILL_VERSION_ID"],
    )
    await client.init()

    result = await client.validate("deploy:staging", {"target": "eu-staging-1"})
    print(f"deploy:staging -> {result.outcome}")

    try:
        result = await client.validate("deploy:production", {"target": "eu-prod-1"})
        print(f"deploy:production -> {result.outcome}")
    except Exception as e:
        print(f"deploy:production -> DENIED: {e}")

    try:
        await CLAIIMClient("http://127.0.0.1:1/v", "x", "y").validate("deploy:staging")
        print("unreachable -> ALLOW")
    except Exception as e:
        print(f"unreachable -> DENIED: {e.reason}")

asyncio.run(main())
`
		cmd := exec.CommandContext(ctx, py, "-c", script)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(testenv.RepoRoot(), "gate", "python"),
			"GATE_URL="+gateURL+"/v", "AGENT_TOKEN="+w.token, "SKILL_VERSION_ID="+w.svID)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(Equal("deploy:staging -> ALLOW\n" +
			"deploy:production -> DENIED: SKILL_FORBIDDEN: skill " + w.svID + " forbids deploy:production (pattern deploy:production)\n" +
			"unreachable -> DENIED: UNREACHABLE\n"))
		Expect(string(out)).NotTo(ContainSubstring(w.token))
	})
})

func ledgerID(g Gomega, skill string) string {
	s := &claiimv1.Skill{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: skill}, s)).To(Succeed())
	g.Expect(s.Status.Versions).NotTo(BeEmpty())
	return s.Status.Versions[0].ID
}
