package server_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/policytest"
)

// claiim test derives offline what the manager records and decides with
// the gate's function: the example suite's cases must get the same
// answers from the real gate, over the same objects reconciled by the
// real manager.
var _ = Describe("claiim test's example suite", func() {
	It("gets the same answers from the gate over the same objects in a cluster", func() {
		suite, err := policytest.Load("../../docs/examples/policy-tests")
		Expect(err).NotTo(HaveOccurred())
		results, assumed := policytest.Run(suite, policytest.Options{Now: time.Now()})
		Expect(policytest.Print(GinkgoWriter, results, assumed)).To(BeZero(), "offline, every case passes")

		w := &suite.World
		for i := range w.Orgs {
			Expect(k8s.Create(ctx, &w.Orgs[i])).To(Succeed())
		}
		for i := range w.Skills {
			Expect(k8s.Create(ctx, &w.Skills[i])).To(Succeed())
		}
		for i := range w.Policies {
			if w.Policies[i].Spec.Org == "" {
				w.Policies[i].Spec.Org = "engineering" // the suite's only org: other specs' agents stay out of its scope
			}
			Expect(k8s.Create(ctx, &w.Policies[i])).To(Succeed())
		}
		Expect(w.Agents).To(HaveLen(1))
		agent := &w.Agents[0]
		agent.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: string(agent.Spec.AccountabilityAnchor)} // as claiim test assumes
		Expect(k8s.Create(ctx, agent)).To(Succeed())

		sec := &corev1.Secret{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(agent), agent)).To(Succeed())
			g.Expect(agent.Status.Phase).To(Equal(claiimv1.AgentActive))
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: agent.Namespace, Name: controllers.TokenSecretName(agent.Name)}, sec)).To(Succeed())
		}).Should(Succeed())
		tok, pinned := string(sec.Data[claiimv1.SecretKeyAgentToken]), string(sec.Data[claiimv1.SecretKeySkillVersionID])

		for _, t := range suite.Tests {
			for i := range t.Spec.Cases {
				c := &t.Spec.Cases[i]
				// Eventually: the gate may not have seen every object yet.
				Eventually(func(g Gomega) {
					_, body := validate(tok, map[string]any{"action": c.Action, "context": c.Context, "skill_version_id": c.Presents(pinned)})
					var resp api.ValidateResponse
					b, _ := json.Marshal(body)
					g.Expect(json.Unmarshal(b, &resp)).To(Succeed())
					ans := policytest.Answer{Outcome: resp.Outcome, Reason: resp.Reason}
					for _, m := range resp.Policies {
						ans.Policies = append(ans.Policies, m.Name+"/"+m.Rule)
					}
					for _, m := range resp.Audit {
						ans.Audit = append(ans.Audit, m.Name+"/"+m.Rule)
					}
					g.Expect(c.Diff(ans)).To(BeEmpty(), "case %q: the gate answered %s %s (%s)", c.Name, resp.Outcome, resp.Reason, resp.Message)
				}).Should(Succeed())
			}
		}
	})
})
