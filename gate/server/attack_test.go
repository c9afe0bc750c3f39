package server_test

import (
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("A previous skill version under attack", func() {
	It("is refused when someone with patch on agents/status writes it, and the manager takes it out", func() {
		w := newWorld(worldOpts{accepted: true})
		v1, d1 := w.svID, w.agent.Status.SkillDigest
		w.repinToV2(0) // no grace: v1 is refused from now on
		var v2 string
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent)).To(Succeed())
			g.Expect(w.agent.Status.ObservedGeneration).To(Equal(w.agent.Generation))
			g.Expect(w.agent.Status.SkillVersionID).NotTo(Equal(v1))
			v2 = w.agent.Status.SkillVersionID
		}).Should(Succeed())
		Expect(w.agent.Status.PreviousSkillVersion).To(BeNil())
		Eventually(func(g Gomega) {
			status, body := w.ask("deploy:staging", nil)
			g.Expect(status).To(Equal(http.StatusForbidden))
			g.Expect(body).To(HaveKeyWithValue("reason", "SKILL_VERSION_MISMATCH"))
		}).Should(Succeed())

		By("writing v1 back as the previous version, open for an hour")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent); err != nil {
				return err
			}
			w.agent.Status.PreviousSkillVersion = &claiimv1.PreviousSkillVersion{Name: w.skill, Version: 1, ID: v1, Digest: d1,
				Until: metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))}
			return k8s.Status().Update(ctx, w.agent)
		})).To(Succeed())
		Consistently(func(g Gomega) {
			status, body := w.ask("deploy:staging", nil)
			g.Expect(status).NotTo(Equal(http.StatusOK), "v1 allowed under a previous version the manager never signed: %v", body)
		}, "3s", "100ms").Should(Succeed())

		By("the manager does not adopt it: the next status it signs has no previous version")
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent)).To(Succeed())
			g.Expect(w.agent.Status.PreviousSkillVersion).To(BeNil())
		}).Should(Succeed())
		status, body := validate(w.token, map[string]any{"action": "deploy:canary", "skill_version_id": v2})
		Expect(status).To(Equal(http.StatusOK), "%v", body)
		status, body = w.ask("deploy:staging", nil)
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(body).To(HaveKeyWithValue("reason", "SKILL_VERSION_MISMATCH"))
	})
})

var _ = Describe("AuthZEN under attack", func() {
	It("decides only as the authenticated agent, whatever spelling or default names another, one Chron row per evaluation", func() {
		a, b := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
		self := a.subject()
		spelled := []map[string]any{
			{"type": "agent", "id": strings.ToUpper(self["id"].(string)), "properties": self["properties"]},
			{"type": "agent", "id": " " + self["id"].(string), "properties": self["properties"]},
			{"type": "Agent", "id": self["id"], "properties": self["properties"]},
			{"type": "agent", "id": b.ns + "/" + b.agent.Name, "properties": map[string]any{"skill_version_id": b.svID}},
		}
		items := []any{map[string]any{"subject": self, "action": map[string]any{"name": "deploy:staging"}}}
		for _, sub := range spelled {
			items = append(items, map[string]any{"subject": sub, "action": map[string]any{"name": "deploy:staging"}})
		}
		// An item without a subject takes the batch's: here b's.
		items = append(items, map[string]any{"action": map[string]any{"name": "deploy:staging"}})
		before := a.decisionRows()
		status, out, _ := authzen("/access/v1/evaluations", a.token,
			map[string]any{"subject": spelled[3], "evaluations": items}, "")
		Expect(status).To(Equal(http.StatusOK), "%v", out)
		evs := out["evaluations"].([]any)
		Expect(evs).To(HaveLen(len(items)))
		for i, e := range evs {
			dc := decisionContext(e)
			if i == 0 {
				Expect(e).To(HaveKeyWithValue("decision", true))
				Expect(dc).To(HaveKeyWithValue("reason_code", "OWN_AIORG"))
			} else {
				Expect(e).To(HaveKeyWithValue("decision", false), "item %d", i)
				Expect(dc).To(HaveKeyWithValue("reason_code", "SUBJECT_MISMATCH"), "item %d", i)
			}
			row := a.rowByID(dc["decision_id"])
			Expect(row.AgentName).To(Equal(a.agent.Name))
			Expect(row.AgentNamespace).To(Equal(a.ns))
		}
		Expect(a.decisionRows()).To(Equal(before+len(items)), "one row per evaluation, none skipped")
		Expect(b.rows()).To(BeEmpty(), "nothing was decided or recorded as the agent named in the body")
	})
})
