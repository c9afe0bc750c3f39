package controllers_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("Skill", func() {
	ready := func(g Gomega, s *claiimv1.Skill) *metav1.Condition {
		return cond(g, s, func() []metav1.Condition { return s.Status.Conditions }, claiimv1.ConditionReady)
	}

	It("publishes a stable id and digest for every version", func() {
		o := readyOrg(uniq("engineering"), "")
		s := deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, s), metav1.ConditionTrue, claiimv1.ReasonReconciled)
		}).Should(Succeed())

		Expect(s.Status.Versions).To(HaveLen(1))
		v1 := s.Status.Versions[0]
		want := s.Spec.Versions[0].Digest()
		Expect(v1.Digest).To(Equal(want))
		Expect(v1.Digest).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
		Expect(v1.ID).To(Equal(s.Name + "-v1-" + strings.TrimPrefix(want, "sha256:")[:8]))
		Expect(s.Status.LatestVersion).To(BeEquivalentTo(1))
		Expect(s.Status.LatestVersionID).To(Equal(v1.ID))

		By("appending version 2, version 1 keeps its id")
		Expect(update(s, func() {
			s.Spec.Versions = append(s.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:staging", "deploy:canary"}, []claiimv1.ActionPattern{"deploy:production"}))
		})).To(Succeed())
		Eventually(func(g Gomega) {
			ready(g, s)
			g.Expect(s.Status.Versions).To(HaveLen(2))
			g.Expect(s.Status.LatestVersion).To(BeEquivalentTo(2))
		}).Should(Succeed())
		Expect(s.Status.Versions[0]).To(Equal(v1))
		Expect(s.Status.Versions[1].ID).NotTo(Equal(v1.ID))
		Expect(s.Status.Versions[1].Digest).NotTo(Equal(v1.Digest))
	})

	It("is not ready while its org is missing, and names the org", func() {
		orgName := uniq("nowhere")
		s := deployBot(uniq("deploy-bot"), orgName)
		Expect(k8s.Create(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			c := ready(g, s)
			expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonOrgNotFound)
			g.Expect(c.Message).To(ContainSubstring(orgName))
			// Ids are facts of the versions: published even now.
			g.Expect(s.Status.Versions).To(HaveLen(1))
		}).Should(Succeed())

		readyOrg(orgName, "")
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, s), metav1.ConditionTrue, claiimv1.ReasonReconciled)
		}).Should(Succeed())
	})
})
