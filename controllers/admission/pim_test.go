package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

func uniq(p string) string { return p + "-" + utilrand.String(6) }

// request asks for elevation as c and returns the stored request.
func request(c client.Client, mutate ...func(*claiimv1.PIMRequest)) *claiimv1.PIMRequest {
	GinkgoHelper()
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: uniq("pim")},
		Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet"}}
	for _, m := range mutate {
		m(p)
	}
	Expect(c.Create(ctx, p)).To(Succeed())
	return p
}

// annotate sets one annotation as c (what kubectl annotate does).
func annotate(c client.Client, obj client.Object, key, value string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[key] = value
		obj.SetAnnotations(ann)
		return c.Update(ctx, obj)
	})
}

// edit re-reads obj as c, mutates and writes it.
func edit(c client.Client, obj client.Object, mutate func()) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return c.Update(ctx, obj)
	})
}

// elevate gets c's user a session approved by peer and waits until the
// manager reports it Active.
func elevate(c client.Client) *claiimv1.PIMRequest {
	GinkgoHelper()
	p := request(c)
	Expect(annotate(peer, p, claiimv1.AnnotationApprove, "ok")).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
	}).Should(Succeed())
	return p
}

func org(name string) *claiimv1.AIOrg {
	return &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: claiimv1.AIOrgSpec{DisplayName: name}}
}

func skill(name, orgName string) *claiimv1.Skill {
	return &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: claiimv1.SkillSpec{Org: claiimv1.OrgName(orgName), DisplayName: "Deploy Bot",
		Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "deploy-bot@yourcompany.com",
			AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}}}}}
}

func agent(ns, orgName, skillName, anchor string) *claiimv1.Agent {
	return &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prod-deploy-bot"}, Spec: claiimv1.AgentSpec{
		Org: claiimv1.OrgName(orgName), DisplayName: "Prod Deploy Bot", AccountabilityAnchor: claiimv1.Username(anchor),
		SkillRef: claiimv1.SkillRef{Name: skillName, Version: 1}}}
}

func namespace() string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	Expect(root.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func expectRefused(err error, words ...string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	for _, w := range words {
		Expect(err.Error()).To(ContainSubstring(w))
	}
}

func chronRows(kind string) []chron.Row {
	GinkgoHelper()
	rows, _, err := chron.List(ctx, pool, chron.Filter{Kind: kind, Limit: 1000})
	Expect(err).NotTo(HaveOccurred())
	return rows
}

// world makes an org, skill and namespace with an elevated admin.
func world() (orgName, skillName, ns string) {
	GinkgoHelper()
	elevate(admin)
	orgName, skillName, ns = uniq("engineering"), uniq("deploy-bot"), namespace()
	Expect(admin.Create(ctx, org(orgName))).To(Succeed())
	Expect(admin.Create(ctx, skill(skillName, orgName))).To(Succeed())
	return
}

var _ = Describe("PIM", Serial, func() {
	BeforeEach(func() {
		// Sessions from earlier specs must not leak: move the clock past
		// every session's end.
		clock.SetTime(clock.Now().Add(9 * time.Hour))
	})

	It("refuses every control-plane change without a session, and says how to get one", func() {
		ns := namespace()
		for _, obj := range []client.Object{
			org(uniq("engineering")), skill(uniq("deploy-bot"), "engineering"),
			&claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-production-deploys")}, Spec: claiimv1.PolicySpec{
				Rules: []claiimv1.PolicyRule{{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}},
			agent(ns, "engineering", "deploy-bot", adminUser),
		} {
			err := admin.Create(ctx, obj)
			expectRefused(err, "needs an active PIM session for admin@claiim.io", "PIMRequest", "claiim.io/approve")
		}
		Expect(chronRows("admission.refused")).To(ContainElement(And(
			HaveField("Actor", adminUser), HaveField("Reason", "NO_PIM_SESSION"), HaveField("Action", "create:aiorgs"))))
	})

	It("needs a second person: not yourself, not someone without the approve verb; then the change is admitted and both sides are in Chron", func() {
		p := request(admin)
		Expect(p.Spec.Requester).To(BeEquivalentTo(adminUser))

		expectRefused(annotate(admin, p, claiimv1.AnnotationApprove, "looks fine to me"), "cannot approve your own request")
		expectRefused(annotate(outsider, p, claiimv1.AnnotationApprove, "sure"), "approve", "claiim-approver")
		Expect(annotate(peer, p, claiimv1.AnnotationApprove, "onboarding approved")).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
			g.Expect(p.Status.ApprovedBy).To(BeEquivalentTo(peerUser))
			g.Expect(p.Status.Requester).To(BeEquivalentTo(adminUser))
			g.Expect(p.Status.ExpiresAt.Time).To(BeTemporally("~", p.Status.ApprovedAt.Add(time.Hour), time.Second))
		}).Should(Succeed())

		name := uniq("engineering")
		Expect(admin.Create(ctx, org(name))).To(Succeed())

		Expect(chronRows("pim.requested")).To(ContainElement(And(HaveField("Actor", adminUser), HaveField("Message", ContainSubstring(p.Spec.Reason)))))
		Expect(chronRows("pim.approved")).To(ContainElement(And(HaveField("Actor", peerUser), HaveField("Context", HaveKeyWithValue("requester", adminUser)))))
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", adminUser), HaveField("Reason", "SELF_APPROVAL"))))
		Expect(chronRows("pim.refused")).To(ContainElement(And(HaveField("Actor", outsiderUser), HaveField("Reason", "NOT_AN_APPROVER"))))
		Expect(chronRows("admission.admitted")).To(ContainElement(And(HaveField("Actor", adminUser), HaveField("Action", "create:aiorgs"),
			HaveField("Context", HaveKeyWithValue("pim_session", p.Name)), HaveField("Context", HaveKeyWithValue("approved_by", peerUser)))))

		By("a decision already made can't change")
		expectRefused(annotate(peer, p, claiimv1.AnnotationDeny, "changed my mind"), "already Active")
	})

	It("ignores or refuses forged identities", func() {
		p := request(admin, func(p *claiimv1.PIMRequest) {
			p.Spec.Requester = peerUser
			p.Annotations = map[string]string{claiimv1.AnnotationApprovedBy: outsiderUser, claiimv1.AnnotationApprovedAt: time.Now().Format(time.RFC3339),
				claiimv1.AnnotationApprove: "self-approved"}
			p.Status.Phase = claiimv1.PIMActive
		})
		Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		Expect(p.Spec.Requester).To(BeEquivalentTo(adminUser), "the requester comes from the authenticated user")
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovedBy))
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprove))
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMPending))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMPending))
		}, "500ms").Should(Succeed())

		By("writing the stamp by hand does nothing")
		Expect(annotate(admin, p, claiimv1.AnnotationApprovedBy, peerUser)).To(Succeed())
		Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		Expect(p.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprovedBy))
		Expect(p.Session(clock.Now()).Phase).To(Equal(claiimv1.PIMPending))

		By("nor can the status be written by a user")
		p.Status.Phase = claiimv1.PIMActive
		expectRefused(admin.Status().Update(ctx, p))

		By("the requester can't be changed later")
		expectRefused(edit(admin, p, func() { p.Spec.Requester = peerUser }), "cannot be changed")
	})

	It("stops working the moment the session expires; what was created stays", func() {
		elevate(admin)
		name := uniq("engineering")
		Expect(admin.Create(ctx, org(name))).To(Succeed())

		clock.SetTime(clock.Now().Add(time.Hour + time.Second))
		expectRefused(admin.Create(ctx, org(uniq("engineering"))), "needs an active PIM session")
		Expect(root.Get(ctx, client.ObjectKey{Name: name}, &claiimv1.AIOrg{})).To(Succeed())
	})

	It("elevates a GitOps ServiceAccount when a human requests it and another approves", func() {
		sa := "system:serviceaccount:argocd:argocd-application-controller"
		p := request(admin, func(p *claiimv1.PIMRequest) { p.Spec.Subject = claiimv1.Username(sa) })
		Expect(annotate(peer, p, claiimv1.AnnotationApprove, "GitOps sync of the fleet")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
			g.Expect(p.Status.Subject).To(BeEquivalentTo(sa))
		}).Should(Succeed())
		expectRefused(admin.Create(ctx, org(uniq("engineering"))), "needs an active PIM session for admin@claiim.io")
	})
})

var _ = Describe("Skills", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("keep published versions; v2 appends; the agent stays on v1 until re-pointed; a skill in use can't be deleted", func() {
		orgName, skillName, ns := world()
		s := &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: skillName}}
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		// The agent is on v1 before v2 exists; without this wait, a slow
		// first reconcile (Chron commits under load) fails the
		// Consistently below before the agent has any version at all.
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v1-"))
		}).Should(Succeed())

		expectRefused(edit(admin, s, func() { s.Spec.Versions[0].ForbiddenActions = nil }), "immutable")
		Expect(edit(admin, s, func() {
			s.Spec.Versions = append(s.Spec.Versions, claiimv1.SkillVersion{Version: 2, AgentEmail: "deploy-bot@yourcompany.com",
				AllowedActions: []claiimv1.ActionPattern{"deploy:staging", "deploy:canary"}})
		})).To(Succeed())
		expectRefused(edit(admin, s, func() { s.Spec.Versions = s.Spec.Versions[1:] }))

		Consistently(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Spec.SkillRef.Version).To(BeEquivalentTo(1))
			g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v1-"))
		}, "500ms").Should(Succeed())
		Expect(edit(admin, a, func() { a.Spec.SkillRef.Version = 2 })).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.SkillVersionID).To(ContainSubstring("-v2-"))
		}).Should(Succeed())
		expectRefused(edit(admin, a, func() { a.Spec.SkillRef.Version = 3 }), "no published version 3")
		expectRefused(admin.Delete(ctx, s), "used by agent(s)", ns+"/prod-deploy-bot")
	})
})

var _ = Describe("Agents", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("suspend without a session, resume only with one; decommissioned can't be revived", func() {
		orgName, skillName, ns := world()
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive), "the creator is the anchor: acceptance is implicit")
		}).Should(Succeed())

		clock.SetTime(clock.Now().Add(2 * time.Hour)) // the session is over
		Expect(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })).To(Succeed())
		Expect(chronRows("admission.admitted")).To(ContainElement(And(HaveField("Reason", "SAFETY_ACTION"), HaveField("AgentNamespace", ns))))
		Expect(changedBy(a)).To(Equal(claiimv1.ChangedBy{User: adminUser}), "the suspension is admin's, under no session")
		expectRefused(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleActive }), "needs an active PIM session")

		elevate(admin)
		Expect(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleDecommissioned })).To(Succeed())
		expectRefused(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleActive }), "decommission")
		expectRefused(edit(admin, a, func() { a.Spec.DisplayName = "zombie" }), "decommission")
		Eventually(func(g Gomega) {
			g.Expect(chronRows("token.revoked")).To(ContainElement(HaveField("AgentNamespace", ns)))
			g.Expect(chronRows("agent.lifecycle")).To(ContainElement(And(HaveField("AgentNamespace", ns), HaveField("Reason", "AGENT_DECOMMISSIONED"))))
		}).Should(Succeed())
	})

	It("with another anchor stay Inactive, and the gate denies them, until that anchor, and only that anchor, accepts", func() {
		orgName, skillName, ns := world()
		a := agent(ns, orgName, skillName, peerUser)
		a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: peerUser} // pre-accepting for someone else is stripped
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive))
		}).Should(Succeed())
		Expect(gateSays(a)).To(Equal(decide.ReasonAgentInactive))

		expectRefused(annotate(admin, a, claiimv1.AnnotationAnchorAccepted, peerUser), "only the accountability anchor peer@claiim.io")
		expectRefused(annotate(outsider, a, claiimv1.AnnotationAnchorAccepted, outsiderUser), "only the accountability anchor")
		Expect(annotate(peer, a, claiimv1.AnnotationAnchorAccepted, peerUser)).To(Succeed(), "the anchor needs no PIM session to accept")
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
		}).Should(Succeed())
		Expect(gateSays(a)).To(Equal(decide.ReasonOwnAIOrg))
	})
})

// gateSays runs the gate's decision for deploy:staging on a snapshot of
// what the apiserver holds now.
func gateSays(a *claiimv1.Agent) string {
	GinkgoHelper()
	return decideAs(a, "deploy:staging").Reason
}
