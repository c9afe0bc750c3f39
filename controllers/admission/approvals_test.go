package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var _ = Describe("PIM approvals", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("with two approvers required: distinct people besides the requester, each recorded; the second starts the session", func() {
		p := request(admin, func(p *claiimv1.PIMRequest) { p.Spec.ApprovalsRequired = 2 })

		expectRefused(annotate(admin, p, claiimv1.AnnotationApprove, "me too"), "cannot approve your own request")
		Expect(annotate(peer, p, claiimv1.AnnotationApprove, "first look: fine")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMPending))
			g.Expect(p.Status.Approvals).To(ConsistOf(HaveField("By", claiimv1.Username(peerUser))))
			g.Expect(p.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("1 of 2 approvals"))))
		}).Should(Succeed())
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprove), "consumed, so the next approver can set it")
		expectRefused(admin.Create(ctx, org(uniq("engineering"))), "needs an active PIM session")

		By("the same person approving again counts once: refused")
		expectRefused(annotate(peer, p, claiimv1.AnnotationApprove, "really fine"), "you already approved this request", "needs 2 distinct approvers")
		Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		Expect(p.Session(clock.Now()).Phase).To(Equal(claiimv1.PIMPending))

		By("a second, different approver starts the session")
		Expect(annotate(ciso, p, claiimv1.AnnotationApprove, "second look: fine")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
			g.Expect(p.Status.ApprovedBy).To(BeEquivalentTo(cisoUser))
			g.Expect(p.Status.Approvals).To(HaveExactElements(HaveField("By", claiimv1.Username(peerUser)), HaveField("By", claiimv1.Username(cisoUser))))
		}).Should(Succeed())
		Expect(admin.Create(ctx, org(uniq("engineering")))).To(Succeed())

		Expect(chronRows("pim.approved")).To(ContainElements(
			And(HaveField("Actor", peerUser), HaveField("Reason", "PIM_APPROVAL_RECORDED"), HaveField("Message", ContainSubstring("1 of 2 approvals"))),
			And(HaveField("Actor", cisoUser), HaveField("Reason", "PIM_APPROVED"), HaveField("Message", ContainSubstring("2 of 2 approvals")))))
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", peerUser), HaveField("Reason", "DUPLICATE_APPROVAL"))))
	})

	It("refuses approving a request that waited longer than the pending TTL, and says to file a new one", func() {
		p := request(admin)
		now := clock.Now()
		DeferCleanup(func() { clock.SetTime(now) }) // the suite's other requests are young again
		clock.SetTime(now.Add(pendingTTL + time.Minute))

		expectRefused(annotate(peer, p, claiimv1.AnnotationApprove, "late, but fine"), "expired", "can no longer be approved", "File a new PIMRequest")
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", peerUser), HaveField("Reason", "PIM_PENDING_EXPIRED"))))

		By("the manager records the expiry once it looks again")
		Expect(edit(admin, p, func() { p.Labels = map[string]string{"nudge": "1"} })).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMExpired))
			g.Expect(p.Status.Conditions).To(ContainElement(HaveField("Reason", claiimv1.ReasonPendingExpired)))
			g.Expect(chronRows("pim.expired")).To(ContainElement(And(HaveField("Actor", adminUser), HaveField("Reason", "PIM_PENDING_EXPIRED"),
				HaveField("Context", HaveKeyWithValue("name", p.Name)))))
		}).Should(Succeed())
	})
})
