package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
)

var _ = Describe("Re-pinning an agent", func() {
	// repinned makes an active agent on v1 of a two-version skill, with
	// the grace given, re-pins it to v2 and returns it with v1's id.
	repinned := func(grace *int32) (*claiimv1.Agent, string) {
		GinkgoHelper()
		o := readyOrg(uniq("engineering"), "")
		skill := deployBot(uniq("deploy-bot"), o.Name)
		skill.Spec.Versions = append(skill.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:canary"}, nil))
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		a := agent(newNamespace(), "prod-deploy-bot", o.Name, skill.Name, 1, anchor)
		a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
		a.Spec.RepinGracePeriodSeconds = grace
		Expect(k8s.Create(ctx, a)).To(Succeed())
		var v1 string
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
			v1 = a.Status.SkillVersionID
		}).Should(Succeed())
		Expect(a.Status.PreviousSkillVersion).To(BeNil(), "nothing was re-pinned yet")
		Expect(update(a, func() { a.Spec.SkillRef.Version = 2 })).To(Succeed())
		return a, v1
	}

	It("records the previous version and when its grace window ends, under the manager's signature, then drops it", func() {
		signer, err := controllers.LoadSigner(ctx, k8s, k8s, gateNamespace)
		Expect(err).NotTo(HaveOccurred())
		a, v1 := repinned(ptr.To[int32](3))
		seen := time.Now()
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v2-"))
			p := a.Status.PreviousSkillVersion
			g.Expect(p).NotTo(BeNil())
			g.Expect(*p).To(MatchFields(IgnoreExtras, Fields{"Name": Equal(a.Spec.SkillRef.Name), "Version": BeEquivalentTo(1), "ID": Equal(v1)}))
			g.Expect(p.Until.Time).To(BeTemporally("~", seen.Add(3*time.Second), 3*time.Second))
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
			g.Expect(a.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("still accepts the previous version "+v1))))
		}).Should(Succeed())

		By("the signature covers the window: a longer one written by anyone else does not verify")
		forged := a.DeepCopy()
		forged.Status.PreviousSkillVersion.Until = metav1.NewTime(forged.Status.PreviousSkillVersion.Until.Add(time.Hour))
		Expect(signer.Verify(attest.Agent(forged), forged.Status.Attestation)).NotTo(Succeed())

		By("at the window's end the manager drops it, with no other event")
		until := a.Status.PreviousSkillVersion.Until.Time
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.PreviousSkillVersion).To(BeNil())
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", until))
	})

	It("keeps no previous version when the grace period is 0, and gives 600 seconds when it is unset", func() {
		a, _ := repinned(ptr.To[int32](0))
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v2-"))
			g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.PreviousSkillVersion).To(BeNil())
		}, "500ms").Should(Succeed())

		// Unset (no CRD default: an agent stored before the field keeps the
		// content its admission stamp covers) means 600 seconds.
		d, _ := repinned(nil)
		Expect(d.Spec.RepinGracePeriodSeconds).To(BeNil())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
			g.Expect(d.Status.PreviousSkillVersion).NotTo(BeNil())
			g.Expect(d.Status.PreviousSkillVersion.Until.Time).To(BeTemporally(">", time.Now().Add(9*time.Minute)))
		}).Should(Succeed())
	})
})
