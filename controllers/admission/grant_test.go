package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/decide"
)

var _ = Describe("CrossOrgGrants", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("work only with both sides' approval, by two different org admins, until revoked", func() {
		elevate(admin)
		Expect(admin.Create(ctx, org("engineering"))).To(Succeed())
		Expect(admin.Create(ctx, org("finance"))).To(Succeed())
		ledger := skill("ledger", "finance")
		Expect(admin.Create(ctx, ledger)).To(Succeed())
		g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "finance-to-engineering"}, Spec: claiimv1.CrossOrgGrantSpec{
			GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}, Duration: &metav1.Duration{Duration: 24 * time.Hour}}}
		Expect(admin.Create(ctx, g)).To(Succeed())
		ns := namespace()
		expectRefused(admin.Create(ctx, agent(ns, "engineering", "ledger", adminUser)), "no active CrossOrgGrant")

		By("one side is not enough, and only that org's admin can approve it")
		expectRefused(annotate(peer, g, claiimv1.AnnotationApproveGranting, "finance says yes"), "not an admin of org \"finance\"")
		Expect(annotate(cfo, g, claiimv1.AnnotationApproveGranting, "finance shares its ledger skill")).To(Succeed())
		Consistently(func(g2 Gomega) {
			g2.Expect(root.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			g2.Expect(g.Status.Phase).To(Equal(claiimv1.GrantPending))
		}, "500ms").Should(Succeed())
		expectRefused(annotate(cfo, g, claiimv1.AnnotationApproveReceiving, "me again"), "not an admin of org \"engineering\"")

		By("both sides, two people: the grant is active and the agent may use the skill")
		Expect(annotate(peer, g, claiimv1.AnnotationApproveReceiving, "engineering needs it")).To(Succeed())
		Eventually(func(g2 Gomega) {
			g2.Expect(root.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			g2.Expect(g.Status.Phase).To(Equal(claiimv1.GrantActive))
			g2.Expect(g.Status.GrantingApprovedBy).To(BeEquivalentTo(cfoUser))
			g2.Expect(g.Status.ReceivingApprovedBy).To(BeEquivalentTo(peerUser))
		}).Should(Succeed())
		a := agent(ns, "engineering", "ledger", adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g2 Gomega) {
			g2.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g2.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
		}).Should(Succeed())
		Expect(gateSays(a)).To(Equal(decide.ReasonCrossAIOrgGrant))

		By("revoking needs no session and ends it at once")
		clock.SetTime(clock.Now().Add(2 * time.Hour))
		Expect(edit(cfo, g, func() { g.Spec.Revoked = true })).To(Succeed())
		Expect(gateSays(a)).NotTo(Equal(decide.ReasonCrossAIOrgGrant))
		Eventually(func(g2 Gomega) {
			g2.Expect(root.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			g2.Expect(g.Status.Phase).To(Equal(claiimv1.GrantRevoked))
		}).Should(Succeed())
	})
})

var _ = Describe("Chron unavailable", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("refuses a privileged change it cannot record", func() {
		elevate(admin)
		Expect(pg.Control(ctx, "stop")).To(Succeed())
		started := false
		DeferCleanup(func() {
			if !started {
				_ = pg.Control(ctx, "start")
			}
		})
		err := admin.Create(ctx, org(uniq("engineering")))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("could not be recorded in Chron"))
		Expect(pg.Control(ctx, "start")).To(Succeed())
		started = true
		Eventually(func() error { return admin.Create(ctx, org(uniq("engineering"))) }).Should(Succeed())
	})
})
