package admission_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/testenv"
)

// An elevated admin who may not read an org's Chron rows must not learn
// them from a what-if: its warnings and the session's status.whatIf name
// agents and actions of the rows replayed.
var _ = Describe("What-if under attack", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("replays only the orgs whose Chron rows the change's author may read, and says which it left out", func() {
		elevate(admin)
		parentOrg, childOrg, skillName, ns := uniq("finance"), uniq("payments"), uniq("pay-bot"), namespace()
		Expect(admin.Create(ctx, org(parentOrg))).To(Succeed())
		child := org(childOrg)
		child.Spec.Parent = claiimv1.OrgName(parentOrg)
		Expect(admin.Create(ctx, child)).To(Succeed())
		Expect(admin.Create(ctx, skill(skillName, childOrg))).To(Succeed())
		a := agent(ns, childOrg, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
		}).Should(Succeed())
		w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/whatif-attack-test"})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = w.Close() }()
		for range 2 {
			_, err := w.Write(ctx, &chron.Record{Kind: chron.KindDecision, AgentName: a.Name, AgentNamespace: ns, AgentUID: string(a.UID),
				Org: childOrg, Action: "deploy:staging", Outcome: chron.OutcomeAllow, Reason: "OWN_AIORG",
				SkillVersionID: a.Status.SkillVersionID, SkillDigest: a.Status.SkillDigest})
			Expect(err).NotTo(HaveOccurred())
		}
		deny := func() *claiimv1.Policy {
			return &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-staging")}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(childOrg),
				Rules: []claiimv1.PolicyRule{{Name: "all", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:staging"}}}}}
		}
		flip := "what-if: 2 requests of agent " + ns + "/prod-deploy-bot would flip ALLOW→DENY (action deploy:staging, OWN_AIORG → POLICY_DENY)"

		By("outsider, elevated but with no right to read Chron, hears which org was left out and nothing of its rows")
		session := elevate(outsider)
		c, seen := warned(outsiderUser)
		pol := deny()
		Expect(c.Create(ctx, pol)).To(Succeed())
		got := seen.take()
		Expect(got).To(ContainElement(And(ContainSubstring("the decisions of 1 org(s) this change reaches ("+childOrg+") were not replayed"),
			ContainSubstring("outsider@claiim.io may not read their Chron rows"), ContainSubstring("get on aiorgs/chron"))), "%q", got)
		Expect(strings.Join(got, "\n")).NotTo(ContainSubstring("prod-deploy-bot"))
		Expect(got).To(ContainElement("what-if: replayed 0 requests of the last 24h: 0 would change, 0 would not, 0 cannot be decided"), "%q", got)
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(session), session)).To(Succeed())
			g.Expect(session.Status.WhatIf).To(ContainElement(And(HaveField("Object", "create Policy/"+pol.Name), HaveField("Changed", int32(0)))))
		}).Should(Succeed())
		for _, e := range session.Status.WhatIf {
			Expect(e.Summary).NotTo(ContainSubstring("prod-deploy-bot"))
		}

		Expect(c.Delete(ctx, pol)).To(Succeed())
		Expect(strings.Join(seen.take(), "\n")).NotTo(ContainSubstring("prod-deploy-bot"))

		By("given get on aiorgs/chron for the parent org, the child's rows are replayed for them")
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "chron-reader-" + parentOrg}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{claiimv1.GroupVersion.Group}, Resources: []string{"aiorgs/chron"}, ResourceNames: []string{parentOrg}, Verbs: []string{"get"}}}}
		Expect(root.Create(ctx, role)).To(Succeed())
		Expect(testenv.Bind(ctx, root, outsiderUser, role.Name)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(c.Create(ctx, deny(), client.DryRunAll)).To(Succeed())
			g.Expect(seen.take()).To(ContainElement(flip))
		}).Should(Succeed())
	})
})

// Audit mode is a weakening when it replaces an enforced Deny: it is a
// spec change like any other, under PIM, and its what-if shows it.
var _ = Describe("Audit mode under attack", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("does not let anyone without an active PIM session switch an enforced Deny to Audit", func() {
		orgName, _, _ := world()
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-production-deploys")}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName),
			Rules: []claiimv1.PolicyRule{{Name: "deny-prod", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}
		Expect(admin.Create(ctx, pol)).To(Succeed())

		expectRefused(edit(outsider, pol, func() { pol.Spec.Enforcement = claiimv1.PolicyAudit }), "needs an active PIM session")
		Expect(root.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		Expect(pol.Audit()).To(BeFalse())
		Expect(chronRows("admission.refused")).To(ContainElement(And(HaveField("Actor", outsiderUser), HaveField("Reason", "NO_PIM_SESSION"),
			HaveField("Action", "update:policies"))))

		By("a second Policy in Audit mode for the same action leaves the enforced one whole")
		audit := pol.DeepCopy()
		audit.ObjectMeta = metav1.ObjectMeta{Name: uniq("audit-production-deploys")}
		audit.Spec.Enforcement = claiimv1.PolicyAudit
		expectRefused(outsider.Create(ctx, audit), "needs an active PIM session")
		Expect(admin.Create(ctx, audit)).To(Succeed())
		Expect(root.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		Expect(pol.Audit()).To(BeFalse())
	})
})
