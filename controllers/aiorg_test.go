package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("AIOrg", func() {
	ready := func(g Gomega, o *claiimv1.AIOrg) *metav1.Condition {
		return cond(g, o, func() []metav1.Condition { return o.Status.Conditions }, claiimv1.ConditionReady)
	}

	It("resolves a root org and a child's path from the root", func() {
		root := readyOrg(uniq("engineering"), "")
		Expect(root.Status.Path).To(Equal(root.Name))
		Expect(root.Status.Depth).To(BeZero())
		Expect(root.Status.ObservedGeneration).To(Equal(root.Generation))

		child := readyOrg(uniq("platform"), root.Name)
		Expect(child.Status.Path).To(Equal(root.Name + "/" + child.Name))
		Expect(child.Status.Depth).To(BeEquivalentTo(1))
	})

	It("reports a missing parent, then resolves once the parent is created", func() {
		parent := uniq("missing")
		child := org(uniq("team"), parent)
		Expect(k8s.Create(ctx, child)).To(Succeed())
		Eventually(func(g Gomega) {
			c := ready(g, child)
			expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonParentNotFound)
			g.Expect(c.Message).To(ContainSubstring(parent))
			g.Expect(child.Status.Path).To(BeEmpty())
		}).Should(Succeed())

		readyOrg(parent, "")
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, child), metav1.ConditionTrue, claiimv1.ReasonReconciled)
			g.Expect(child.Status.Path).To(Equal(parent + "/" + child.Name))
		}).Should(Succeed())
	})

	It("names a missing ancestor, not only a missing parent", func() {
		gone := uniq("gone")
		mid := org(uniq("mid"), gone)
		leaf := org(uniq("leaf"), mid.Name)
		Expect(k8s.Create(ctx, mid)).To(Succeed())
		Expect(k8s.Create(ctx, leaf)).To(Succeed())
		Eventually(func(g Gomega) {
			c := ready(g, leaf)
			expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonParentNotFound)
			g.Expect(c.Message).To(ContainSubstring("ancestor AIOrg %q", gone))
		}).Should(Succeed())
	})

	It("detects a cycle and recovers when it is broken", func() {
		a, b := uniq("a"), uniq("b")
		oa, ob := org(a, b), org(b, a)
		Expect(k8s.Create(ctx, oa)).To(Succeed())
		Expect(k8s.Create(ctx, ob)).To(Succeed())
		for _, o := range []*claiimv1.AIOrg{oa, ob} {
			Eventually(func(g Gomega) {
				c := ready(g, o)
				expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonCycle)
				g.Expect(c.Message).To(And(ContainSubstring(a), ContainSubstring(b)))
			}).Should(Succeed())
		}

		Expect(update(oa, func() { oa.Spec.Parent = "" })).To(Succeed())
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, ob), metav1.ConditionTrue, claiimv1.ReasonReconciled)
			g.Expect(ob.Status.Path).To(Equal(a + "/" + b))
		}).Should(Succeed())
	})

	It("re-resolves grandchildren when an ancestor is re-parented", func() {
		r1, r2 := readyOrg(uniq("r1"), ""), readyOrg(uniq("r2"), "")
		mid := readyOrg(uniq("mid"), r1.Name)
		leaf := readyOrg(uniq("leaf"), mid.Name)
		Expect(leaf.Status.Path).To(Equal(r1.Name + "/" + mid.Name + "/" + leaf.Name))

		Expect(update(mid, func() { mid.Spec.Parent = claiimv1.OrgName(r2.Name) })).To(Succeed())
		Eventually(func(g Gomega) {
			ready(g, leaf)
			g.Expect(leaf.Status.Path).To(Equal(r2.Name + "/" + mid.Name + "/" + leaf.Name))
		}).Should(Succeed())
	})

	It("marks children not ready when their parent is deleted", func() {
		p := readyOrg(uniq("parent"), "")
		c := readyOrg(uniq("child"), p.Name)
		Expect(k8s.Delete(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, c), metav1.ConditionFalse, claiimv1.ReasonParentNotFound)
		}).Should(Succeed())
	})
})
