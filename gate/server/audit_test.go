package server_test

import (
	"errors"
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
)

var _ = Describe("An Audit policy", func() {
	It("is recorded in the decision's Chron row as a would-deny and never changes the answer", func() {
		w := newWorld(worldOpts{accepted: true})
		freeze := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("staging-freeze")}, Spec: claiimv1.PolicySpec{
			Org: claiimv1.OrgName(w.org), Enforcement: claiimv1.PolicyAudit,
			Rules: []claiimv1.PolicyRule{{Name: "freeze-deploys", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy"}}},
		}}
		Expect(k8s.Create(ctx, freeze)).To(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(freeze), freeze)).To(Succeed())
		Expect(freeze.Spec.Enforcement).To(Equal(claiimv1.PolicyAudit), "stored as written")

		By("an allowed action stays ALLOW, and the answer lists the would-deny")
		var allow map[string]any
		Eventually(func(g Gomega) {
			var status int
			status, allow = w.ask("deploy:staging", map[string]any{"target": "eu-staging-1"})
			g.Expect(status).To(Equal(http.StatusOK))
			g.Expect(allow).To(HaveKeyWithValue("outcome", "ALLOW"))
			g.Expect(allow).To(HaveKeyWithValue("reason", "OWN_AIORG"))
			g.Expect(allow["audit"]).To(ConsistOf(And(HaveKeyWithValue("name", freeze.Name), HaveKeyWithValue("rule", "freeze-deploys"),
				HaveKeyWithValue("effect", "Deny"))), "the gate has not seen the Audit policy yet")
		}).Should(Succeed())
		Expect(allow).NotTo(HaveKey("policies"), "an Audit match is not among the rules that decided")

		By("a forbidden action stays DENY SKILL_FORBIDDEN, not POLICY_DENY")
		status, deny := w.ask("deploy:production", nil)
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(deny).To(HaveKeyWithValue("reason", "SKILL_FORBIDDEN"))
		Expect(deny["audit"]).To(ConsistOf(HaveKeyWithValue("name", freeze.Name)))

		By("the Chron rows record the match with enforcement Audit beside the real outcome")
		byID := map[string]chron.Row{}
		for _, r := range w.rows() {
			byID[r.ID] = r
		}
		for id, outcome := range map[string]string{allow["decision_id"].(string): "ALLOW", deny["decision_id"].(string): "DENY"} {
			row, ok := byID[id]
			Expect(ok).To(BeTrue(), "decision %s has a row", id)
			Expect(row.Outcome).To(Equal(outcome))
			Expect(row.Policies).To(ConsistOf(chron.PolicyMatch{Name: freeze.Name, Version: freeze.Generation, Rule: "freeze-deploys",
				Effect: "Deny", Enforcement: "Audit"}))
		}
		rep, err := chron.Verify(ctx, pool)
		Expect(err).NotTo(HaveOccurred())
		for _, p := range rep.Problems {
			Expect(p.Stream).NotTo(Equal("gate/test"), "rows with audit matches verify from their stored columns: %s", p)
		}

		key := "audit-" + uniq("key")
		status, keyed := w.askKeyed(key, "deploy:staging")
		Expect(status).To(Equal(http.StatusOK))
		Expect(keyed["audit"]).To(HaveLen(1))

		By("the Go client exposes it")
		c := gateclient.New(gateURL+"/v", w.token, w.svID)
		res, err := c.Validate(ctx, "deploy:staging", nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Audit).To(ConsistOf(HaveField("Name", freeze.Name)))
		_, err = c.Validate(ctx, "deploy:production", nil)
		var d *gateclient.Denied
		Expect(errors.As(err, &d)).To(BeTrue())
		Expect(d.Reason).To(Equal("SKILL_FORBIDDEN"))
		Expect(d.Audit).To(ConsistOf(HaveField("Rule", "freeze-deploys")))

		By("an AuthZEN evaluation carries it in its context, the decision unchanged")
		for action, decision := range map[string]bool{"deploy:staging": true, "deploy:production": false} {
			status, body, _ := authzen("/access/v1/evaluation", w.token, map[string]any{"subject": w.subject(), "action": map[string]any{"name": action}}, "")
			Expect(status).To(Equal(http.StatusOK))
			Expect(body).To(HaveKeyWithValue("decision", decision), action)
			dc := decisionContext(body)
			Expect(dc["audit"]).To(ConsistOf(And(HaveKeyWithValue("name", freeze.Name), HaveKeyWithValue("rule", "freeze-deploys"),
				HaveKeyWithValue("effect", "Deny"))), action)
			Expect(w.rowByID(dc["decision_id"]).Policies).To(ConsistOf(HaveField("Enforcement", "Audit")), action)
		}

		By("enforced, the same policy denies")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(freeze), freeze); err != nil {
				return err
			}
			freeze.Spec.Enforcement = claiimv1.PolicyEnforce
			return k8s.Update(ctx, freeze)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			status, body := w.ask("deploy:staging", nil)
			g.Expect(status).To(Equal(http.StatusForbidden))
			g.Expect(body).To(HaveKeyWithValue("reason", "POLICY_DENY"))
			g.Expect(body).NotTo(HaveKey("audit"))
		}).Should(Succeed())
		status, body, _ := authzen("/access/v1/evaluation", w.token, map[string]any{"subject": w.subject(), "action": map[string]any{"name": "deploy:staging"}}, "")
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(HaveKeyWithValue("decision", false))
		Expect(decisionContext(body)).To(And(HaveKeyWithValue("reason_code", "POLICY_DENY"), Not(HaveKey("audit"))))

		By("a retry of the first decision's key gets that decision, its would-deny included, from its row")
		status, again := w.askKeyed(key, "deploy:staging")
		Expect(status).To(Equal(http.StatusOK))
		Expect(again).To(HaveKeyWithValue("decision_id", keyed["decision_id"]))
		Expect(again["audit"]).To(ConsistOf(HaveKeyWithValue("name", freeze.Name)))
		Expect(again).NotTo(HaveKey("policies"))
	})
})
