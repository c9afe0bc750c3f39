package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// An attacker with a user account against two-person control: each
// attempt is refused (or does nothing) and the request elevates nobody.
var _ = Describe("PIM approvals under attack", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	stillPending := func(p *claiimv1.PIMRequest, approvals int) {
		GinkgoHelper()
		Consistently(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).NotTo(Equal(claiimv1.PIMActive))
			g.Expect(attest.PIMApprovers(p, signer)).To(HaveLen(approvals))
			g.Expect(attest.PIMApproved(p, signer)).To(HaveOccurred())
		}, "1s").Should(Succeed())
	}

	It("refuses the requester approving under another spelling of their username", func() {
		p := request(admin)
		expectRefused(annotate(adminSpelled, p, claiimv1.AnnotationApprove, "the other me"),
			"cannot approve your own request", `you are "Admin@claiim.io"`, "differ only in case or spaces are one person")
		stillPending(p, 0)
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", adminSpelledUser), HaveField("Reason", "SELF_APPROVAL"))))
	})

	It("counts one approver once whatever the spelling", func() {
		p := request(admin, func(p *claiimv1.PIMRequest) { p.Spec.ApprovalsRequired = 2 })
		Expect(annotate(peer, p, claiimv1.AnnotationApprove, "fine")).To(Succeed())
		expectRefused(annotate(peerSpelled, p, claiimv1.AnnotationApprove, "fine again, from my other login"),
			"you already approved this request", "differ only in case or spaces are one person")
		stillPending(p, 1)
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", peerSpelledUser), HaveField("Reason", "DUPLICATE_APPROVAL"))))
	})

	It("does not let the requester write the approval annotations admission stamps", func() {
		By("at creation: stripped")
		p := request(admin, func(p *claiimv1.PIMRequest) {
			p.Annotations = map[string]string{claiimv1.AnnotationApprovedBy: peerUser, claiimv1.AnnotationApprovedAt: clock.Now().UTC().Format(time.RFC3339),
				claiimv1.AnnotationApprovalAttestation: "v1.0000000000000000.AAAA", claiimv1.AnnotationApprovals: `[{"by":"peer@claiim.io","at":"2026-01-01T00:00:00Z","attestation":"v1.x.y"}]`}
		})
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovedBy))
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovals))
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovalAttestation))

		By("by update: put back as they were")
		Expect(edit(admin, p, func() {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[claiimv1.AnnotationApprovedBy] = peerUser
			p.Annotations[claiimv1.AnnotationApprovals] = `[{"by":"peer@claiim.io","at":"2026-01-01T00:00:00Z","attestation":"v1.x.y"}]`
		})).To(Succeed())
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovedBy))
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovals))
		stillPending(p, 0)
		expectRefused(admin.Create(ctx, org(uniq("engineering"))), "needs an active PIM session")
	})

	It("does not count a signed approval copied from another request", func() {
		other := request(outsider, func(p *claiimv1.PIMRequest) { p.Spec.ApprovalsRequired = 2 })
		Expect(annotate(peer, other, claiimv1.AnnotationApprove, "fine")).To(Succeed())
		Expect(root.Get(ctx, client.ObjectKeyFromObject(other), other)).To(Succeed())
		signed := other.Annotations[claiimv1.AnnotationApprovals]
		Expect(attest.PIMApprovers(other, signer)).To(HaveLen(1), "it counts where admission signed it")

		mine := request(admin, func(p *claiimv1.PIMRequest) { p.Spec.ApprovalsRequired = 2 })
		Expect(edit(admin, mine, func() { mine.SetAnnotations(map[string]string{claiimv1.AnnotationApprovals: signed}) })).To(Succeed())
		Expect(mine.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovals), "admission puts its own annotation back")
		stillPending(mine, 0)

		By("had it got there past admission, the signature names the other request and counts nothing")
		copied := mine.DeepCopy()
		copied.SetAnnotations(map[string]string{claiimv1.AnnotationApprovals: signed})
		Expect(attest.PIMApprovers(copied, signer)).To(BeEmpty())
		copied.Spec.ApprovalsRequired = 1
		copied.Annotations[claiimv1.AnnotationApprovedBy] = peerUser
		copied.Annotations[claiimv1.AnnotationApprovedAt] = other.Annotations[claiimv1.AnnotationApprovedAt]
		Expect(attest.PIMApproved(copied, signer)).To(HaveOccurred())
	})

	It("refuses the approval that would complete a request once it waited past the pending TTL", func() {
		p := request(admin, func(p *claiimv1.PIMRequest) { p.Spec.ApprovalsRequired = 2 })
		Expect(annotate(peer, p, claiimv1.AnnotationApprove, "first, in time")).To(Succeed())
		now := clock.Now()
		DeferCleanup(func() { clock.SetTime(now) })
		clock.SetTime(now.Add(pendingTTL + time.Minute))
		expectRefused(annotate(ciso, p, claiimv1.AnnotationApprove, "second, too late"), "expired", "File a new PIMRequest")
		stillPending(p, 1)
	})
})
