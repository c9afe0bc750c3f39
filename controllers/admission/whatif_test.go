package admission_test

import (
	"context"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/testenv"
)

// warnings collects the apiserver's warnings, as kubectl prints them.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// warned is a client of user whose warnings land in w (kubectl apply's
// view of an admission answer).
func warned(user string) (client.Client, *warnings) {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.ConfigOf(user))
	w := &warnings{}
	cfg.WarningHandler, cfg.WarningHandlerWithContext = nil, w
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c, w
}

var _ = Describe("What-if", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("warns which recorded decisions a policy change would flip, and records it on the PIM session", func() {
		session := elevate(admin)
		orgName, skillName, ns := uniq("engineering"), uniq("deploy-bot"), namespace()
		Expect(admin.Create(ctx, org(orgName))).To(Succeed())
		Expect(admin.Create(ctx, skill(skillName, orgName))).To(Succeed())
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
			g.Expect(a.Status.Token).NotTo(BeNil())
		}).Should(Succeed())

		By("the gate recorded four of the agent's requests, one with a secret in its context")
		w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/whatif-test"})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = w.Close() }()
		for name, c := range map[string]map[string]any{
			"blue-1": {"env": "blue"}, "blue-2": {"env": "blue"}, "green": {"env": "green"},
			"masked": {"env": "blue", "token": "hunter2"},
		} {
			_, err := w.Write(ctx, &chron.Record{Kind: chron.KindDecision, AgentName: a.Name, AgentNamespace: ns, AgentUID: string(a.UID),
				Org: orgName, Action: "deploy:staging", Context: c, Outcome: chron.OutcomeAllow, Reason: "OWN_AIORG",
				SkillVersionID: a.Status.SkillVersionID, SkillDigest: a.Status.SkillDigest})
			Expect(err).NotTo(HaveOccurred(), name)
		}

		By("a Deny of blue deploys warns that exactly the two blue ones flip, and that the masked one cannot be decided")
		c, seen := warned(adminUser)
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-blue-deploys")}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName),
			Rules: []claiimv1.PolicyRule{{Name: "blue", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:staging"},
				Condition: `context.env == "blue"`}}}}
		Expect(c.Create(ctx, pol)).To(Succeed())
		got := seen.take()
		Expect(got).To(ContainElements(
			"what-if: replayed 4 requests of the last 24h: 2 would change, 1 would not, 1 cannot be decided",
			"what-if: 2 requests of agent "+ns+"/prod-deploy-bot would flip ALLOW→DENY (action deploy:staging, OWN_AIORG → POLICY_DENY)",
			ContainSubstring("what-if: 1 request cannot be decided: its context was masked"),
		), "%q", got)

		By("the PIM session the change was made under carries the summary")
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(session), session)).To(Succeed())
			g.Expect(session.Status.WhatIf).To(ContainElement(And(
				HaveField("Object", "create Policy/"+pol.Name), HaveField("Changed", int32(2)), HaveField("Undecidable", int32(1)),
				HaveField("Summary", ContainSubstring("2 requests of agent "+ns+"/prod-deploy-bot would flip ALLOW→DENY")))))
		}).Should(Succeed())

		By("a change with no effect on these requests says so")
		Expect(edit(c, pol, func() { pol.Spec.Description = "blue is frozen" })).To(Succeed())
		got = seen.take()
		Expect(got).To(ContainElement("what-if: replayed 4 requests of the last 24h: 0 would change, 3 would not, 1 cannot be decided"), "%q", got)
		Expect(strings.Join(got, "\n")).NotTo(ContainSubstring("would flip"))
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(session), session)).To(Succeed())
			// Newest last; the org, skill and agent made under the session
			// came first (the org has no what-if: it is not a Policy, Skill or Agent).
			g.Expect(session.Status.WhatIf).To(HaveLen(4))
			g.Expect(session.Status.WhatIf[0].Object).To(Equal("create Skill/" + skillName))
			g.Expect(session.Status.WhatIf[3]).To(And(HaveField("Object", "update Policy/"+pol.Name), HaveField("Changed", int32(0))))
		}).Should(Succeed())

		By("deleting it flips the two back")
		Expect(c.Delete(ctx, pol)).To(Succeed())
		got = seen.take()
		Expect(got).To(ContainElement(
			"what-if: 2 requests of agent "+ns+"/prod-deploy-bot would flip DENY→ALLOW (action deploy:staging, POLICY_DENY → OWN_AIORG)"), "%q", got)

		By("a server-side dry run warns the same and records nothing")
		dry := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-deploys")}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName),
			Rules: []claiimv1.PolicyRule{{Name: "all", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:staging"}}}}}
		Expect(c.Create(ctx, dry, client.DryRunAll)).To(Succeed())
		got = seen.take()
		Expect(got).To(ContainElement(
			"what-if: 4 requests of agent "+ns+"/prod-deploy-bot would flip ALLOW→DENY (action deploy:staging, OWN_AIORG → POLICY_DENY)"), "%q", got)
		Consistently(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(session), session)).To(Succeed())
			g.Expect(session.Status.WhatIf).NotTo(ContainElement(HaveField("Object", "create Policy/"+dry.Name)))
		}, "1s").Should(Succeed())

		By("renaming the agent flips nothing: its status, as the manager would re-sign it, still counts")
		Expect(edit(c, a, func() { a.Spec.DisplayName = "Staging Deploy Bot" })).To(Succeed())
		got = seen.take()
		Expect(got).To(ContainElement("what-if: replayed 4 requests of the last 24h: 0 would change, 4 would not, 0 cannot be decided"), "%q", got)

		By("suspending the agent, a safety action without a session, flips all four as the manager would record it")
		Expect(edit(c, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })).To(Succeed())
		got = seen.take()
		Expect(got).To(ContainElement(
			"what-if: 4 requests of agent "+ns+"/prod-deploy-bot would flip ALLOW→DENY (action deploy:staging, OWN_AIORG → AGENT_INACTIVE)"), "%q", got)
	})
})
