package controllers_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/test/testenv"
)

var _ = Describe("config/samples (the seed's objects)", func() {
	It("are accepted by the apiserver and reconcile", func() {
		files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "claiim_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(5))
		for _, f := range files {
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed(), f)
			Expect(k8s.Create(ctx, u)).To(Succeed(), f)
		}

		a := &claiimv1.Agent{}
		Eventually(func(g Gomega) {
			org, skill, pol := &claiimv1.AIOrg{}, &claiimv1.Skill{}, &claiimv1.Policy{}
			for name, conds := range map[string]func() []metav1.Condition{
				"engineering": func() []metav1.Condition {
					g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "engineering"}, org)).To(Succeed())
					return org.Status.Conditions
				},
				"deploy-bot": func() []metav1.Condition {
					g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "deploy-bot"}, skill)).To(Succeed())
					return skill.Status.Conditions
				},
				"no-production-deploys": func() []metav1.Condition {
					g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "no-production-deploys"}, pol)).To(Succeed())
					return pol.Status.Conditions
				},
			} {
				g.Expect(conds()).To(ContainElement(And(
					HaveField("Type", claiimv1.ConditionReady), HaveField("Status", metav1.ConditionTrue))), name)
			}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "prod-deploy-bot"}, a)).To(Succeed())
			// Acceptance by the anchor comes with the PIM webhooks; until
			// then the agent waits for it.
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive))
			g.Expect(a.Status.SkillVersionID).To(HavePrefix("deploy-bot-v1-"))
		}).Should(Succeed())
	})
})
