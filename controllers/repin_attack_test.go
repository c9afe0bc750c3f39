package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("The re-pin grace window under attack", func() {
	It("is not extended by later edits or a longer grace period, and re-pinning back and forth leaves only the version just left", func() {
		o := readyOrg(uniq("engineering"), "")
		skill := deployBot(uniq("deploy-bot"), o.Name)
		skill.Spec.Versions = append(skill.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:canary"}, nil))
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		a := agent(newNamespace(), "prod-deploy-bot", o.Name, skill.Name, 1, anchor)
		a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
		a.Spec.RepinGracePeriodSeconds = ptr.To[int32](60)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		var v1, v2 string
		settled := func(version int32) *claiimv1.PreviousSkillVersion {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
				g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
				g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v" + string(rune('0'+version)) + "-"))
			}).Should(Succeed())
			return a.Status.PreviousSkillVersion
		}
		Expect(settled(1)).To(BeNil())
		v1 = a.Status.SkillVersionID

		Expect(update(a, func() { a.Spec.SkillRef.Version = 2 })).To(Succeed())
		repinned := time.Now()
		prev := settled(2)
		v2 = a.Status.SkillVersionID
		Expect(prev).NotTo(BeNil())
		Expect(prev.ID).To(Equal(v1))
		until := prev.Until.Time
		Expect(until).To(BeTemporally("<=", repinned.Add(61*time.Second)))

		By("an edit that pins nothing new, and a longer grace period, leave the window where it ends")
		Expect(update(a, func() {
			a.Spec.DisplayName = "Prod Deploy Bot (renamed)"
			a.Spec.RepinGracePeriodSeconds = ptr.To[int32](3600)
		})).To(Succeed())
		prev = settled(2)
		Expect(prev).NotTo(BeNil())
		Expect(prev.ID).To(Equal(v1))
		Expect(prev.Until.Time).To(BeTemporally("==", until), "the window of v1 was extended by an edit")

		By("back to v1: only v2, the version just left, is previous")
		Expect(update(a, func() { a.Spec.SkillRef.Version = 1 })).To(Succeed())
		back := time.Now()
		prev = settled(1)
		Expect(prev).NotTo(BeNil())
		Expect(prev.ID).To(Equal(v2))
		Expect(prev.Until.Time).To(BeTemporally("<=", back.Add(3601*time.Second)))

		By("a shorter grace period shortens the open window at once")
		Expect(update(a, func() { a.Spec.RepinGracePeriodSeconds = ptr.To[int32](5) })).To(Succeed())
		shortened := time.Now()
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
			if p := a.Status.PreviousSkillVersion; p != nil { // or already dropped
				g.Expect(p.Until.Time).To(BeTemporally("<=", shortened.Add(6*time.Second)))
			}
		}).Should(Succeed())
	})
})
