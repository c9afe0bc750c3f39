package server_test

import (
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("A re-pinned agent", func() {
	It("keeps its previous skill version for the grace window, each answer naming the pinned one, then is told to re-init", func() {
		w := newWorld(worldOpts{accepted: true})
		v1 := w.svID
		w.repinToV2(15)
		var v2 string
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(w.agent), w.agent)).To(Succeed())
			g.Expect(w.agent.Status.PreviousSkillVersion).NotTo(BeNil())
			v2 = w.agent.Status.SkillVersionID
		}).Should(Succeed())
		until := w.agent.Status.PreviousSkillVersion.Until.Time

		By("the running pod, still on v1, is decided under v1 and told v2 is pinned")
		var body map[string]any
		Eventually(func(g Gomega) {
			var status int
			status, body = w.ask("deploy:staging", nil)
			g.Expect(status).To(Equal(http.StatusOK), "%v", body)
		}).Should(Succeed())
		Expect(body).To(And(HaveKeyWithValue("reason", "OWN_AIORG"), HaveKeyWithValue("skill_version_id", v1), HaveKeyWithValue("pinned_skill_version_id", v2)))
		Expect(body["message"]).To(And(ContainSubstring("previous skill version "+v1), ContainSubstring("re-init to use "+v2)))
		Expect(w.rows()).To(ContainElement(And(HaveField("ID", body["decision_id"]), HaveField("SkillVersionID", v1),
			HaveField("Message", ContainSubstring("previous skill version")))))

		By("a pod that re-inits uses v2")
		status, body := validate(w.token, map[string]any{"action": "deploy:canary", "skill_version_id": v2})
		Expect(status).To(Equal(http.StatusOK))
		Expect(body).To(And(HaveKeyWithValue("skill_version_id", v2), HaveKeyWithValue("pinned_skill_version_id", v2)))

		By("after the window v1 is refused, with words to re-init")
		Eventually(func(g Gomega) {
			status, body = w.ask("deploy:staging", nil)
			g.Expect(status).To(Equal(http.StatusForbidden))
		}).WithTimeout(40 * time.Second).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", until))
		Expect(body).To(And(HaveKeyWithValue("reason", "SKILL_VERSION_MISMATCH"), HaveKeyWithValue("pinned_skill_version_id", v2)))
		Expect(body["message"]).To(ContainSubstring("re-init the agent"))
	})
})

// repinToV2 publishes version 2 of the world's skill (deploy:canary) and
// re-pins the agent to it with a grace window of grace seconds.
func (w *world) repinToV2(grace int32) {
	s := &claiimv1.Skill{}
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Name: w.skill}, s); err != nil {
			return err
		}
		s.Spec.Versions = append(s.Spec.Versions, claiimv1.SkillVersion{Version: 2, AgentEmail: "deploy-bot@yourcompany.com",
			AllowedActions: []claiimv1.ActionPattern{"deploy:canary"}})
		return k8s.Update(ctx, s)
	})).To(Succeed())
	w.update(func(a *claiimv1.Agent) {
		a.Spec.SkillRef.Version = 2
		a.Spec.RepinGracePeriodSeconds = ptr.To[int32](grace)
	})
}
