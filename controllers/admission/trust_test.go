package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
)

var _ = Describe("Trust", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("takes PIM approvals from people: a ServiceAccount approves only when the manager lists it", func() {
		p := request(admin)
		expectRefused(annotate(bot, p, claiimv1.AnnotationApprove, "lgtm"), "is a ServiceAccount", "PIM approvals come from people", "--pim-approver-serviceaccounts")
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", botSA), HaveField("Reason", "SERVICEACCOUNT_APPROVER"))))

		Expect(annotate(approverBot, p, claiimv1.AnnotationApprove, "lgtm")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
			g.Expect(p.Status.ApprovedBy).To(BeEquivalentTo(approverSA))
		}).Should(Succeed())
		Expect(signer.Verify(attest.PIMApproval(p), p.Annotations[claiimv1.AnnotationApprovalAttestation])).To(Succeed(),
			"admission signed the approval it checked")
	})

	It("rotates a token only under PIM, never lets anyone but the manager move the token epoch, and records every step", func() {
		orgName, skillName, ns := world()
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		var first string
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token).NotTo(BeNil())
			g.Expect(a.Status.Token.Hash).NotTo(BeEmpty())
			first = a.Status.Token.ID
		}).Should(Succeed())
		Expect(a.Annotations).To(HaveKeyWithValue(claiimv1.AnnotationTokenEpoch, "1"), "the manager's own write passed admission")

		By("without a session: refused")
		clock.SetTime(clock.Now().Add(2 * time.Hour))
		expectRefused(annotate(admin, a, claiimv1.AnnotationRotateToken, "2026-11-26"), "needs an active PIM session")

		By("with one: the epoch is still the manager's alone")
		elevate(admin)
		expectRefused(annotate(admin, a, claiimv1.AnnotationTokenEpoch, "0"), "written by the manager only", claiimv1.AnnotationRotateToken)
		Expect(annotate(admin, a, claiimv1.AnnotationRotateToken, "2026-11-26")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token.ID).NotTo(Equal(first))
			g.Expect(chronRows("token.rotated")).To(ContainElement(And(HaveField("AgentNamespace", ns), HaveField("Reason", "TOKEN_ROTATED"))))
		}).Should(Succeed())
		Expect(chronRows("admission.admitted")).To(ContainElement(And(HaveField("AgentNamespace", ns),
			HaveField("Message", ContainSubstring("token rotation requested")), HaveField("Reason", "PIM_SESSION"))))

		By("deleting the Secret revokes the token, in Chron")
		sec := &corev1.Secret{}
		Expect(root.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
		Expect(root.Delete(ctx, sec)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(chronRows("token.revoked")).To(ContainElement(And(HaveField("AgentNamespace", ns), HaveField("Message", ContainSubstring("was deleted")))))
		}).Should(Succeed())
	})
})
