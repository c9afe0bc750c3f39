package admission_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

var _ = Describe("History", Serial, func() {
	BeforeEach(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	It("keeps each stored generation of a policy with who changed it under which PIM session, and resolves a decision's policy generation", func() {
		adminSession := elevate(admin)
		orgName, skillName, ns := uniq("engineering"), uniq("deploy-bot"), namespace()
		Expect(admin.Create(ctx, org(orgName))).To(Succeed())
		Expect(admin.Create(ctx, skill(skillName, orgName))).To(Succeed())
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())

		By("generation 1: admin, under their session")
		deny := func(action claiimv1.ActionPattern) []claiimv1.PolicyRule {
			return []claiimv1.PolicyRule{{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{action}}}
		}
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-production-deploys")},
			Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName), Rules: deny("deploy:production-eu")}}
		Expect(admin.Create(ctx, pol)).To(Succeed())
		// The manager records what it sees stored: a change before it saw
		// this one would leave generation 1 a gap (object.gap), not a row.
		Eventually(func(g Gomega) {
			h, err := chron.ListHistory(ctx, pool, chron.HistoryQuery{Kind: "Policy", Name: pol.Name})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h).To(HaveLen(1))
		}).Should(Succeed())

		By("generation 2: peer, under theirs, claiming in the body to be someone else")
		peerSession := request(peer)
		Expect(annotate(approverBot, peerSession, claiimv1.AnnotationApprove, "ok")).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(peerSession), peerSession)).To(Succeed())
			g.Expect(peerSession.Status.Phase).To(Equal(claiimv1.PIMActive))
		}).Should(Succeed())
		Expect(edit(peer, pol, func() {
			pol.Spec.Rules = deny("deploy:production")
			pol.Annotations[claiimv1.AnnotationChangedBy] = claiimv1.ChangedBy{User: "mallory@claiim.io", PIMSession: adminSession.Name}.String()
		})).To(Succeed())
		Expect(pol.Generation).To(BeEquivalentTo(2))
		Expect(changedBy(pol)).To(Equal(
			claiimv1.ChangedBy{User: peerUser, PIMSession: peerSession.Name}), "admission writes who changed it, whatever the body says")

		By("a metadata write keeps the generation's author")
		Expect(annotate(peer, pol, "example.com/note", "reviewed")).To(Succeed())
		Expect(changedBy(pol)).To(HaveField("User", peerUser))

		var history []chron.Generation
		Eventually(func(g Gomega) {
			var err error
			history, err = chron.ListHistory(ctx, pool, chron.HistoryQuery{Kind: "Policy", Name: pol.Name})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(history).To(HaveLen(2))
		}).Should(Succeed())
		Expect(history[0]).To(And(HaveField("Generation", BeEquivalentTo(1)), HaveField("UID", string(pol.UID)), HaveField("Admitted", true),
			HaveField("ChangedBy", adminUser), HaveField("PIMSession", adminSession.Name)))
		Expect(history[1]).To(And(HaveField("Generation", BeEquivalentTo(2)), HaveField("Admitted", true),
			HaveField("ChangedBy", peerUser), HaveField("PIMSession", peerSession.Name)))
		Expect(string(history[0].Spec)).To(ContainSubstring(`"deploy:production-eu"`))
		for _, gen := range history {
			Expect(chron.SpecDigest(gen.Spec)).To(Equal(gen.Digest))
		}
		Eventually(func(g Gomega) {
			var gens []any
			for _, r := range chronRows(string(chron.KindObjectChanged)) {
				if r.Context["name"] == pol.Name {
					gens = append(gens, r.Context["generation"])
					g.Expect(r.Actor).To(BeElementOf(adminUser, peerUser))
				}
			}
			g.Expect(gens).To(ConsistOf(BeEquivalentTo(1), BeEquivalentTo(2)))
		}).Should(Succeed())
		for _, r := range chronRows(string(chron.KindObjectGap)) {
			Expect(r.Context["name"]).NotTo(Equal(pol.Name), "no generation was missed: %s", r.Message)
		}

		By("the decision names the policy's generation, and the history has its content")
		Eventually(func(g Gomega) {
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
		}).Should(Succeed())
		d := decideAs(a, "deploy:production")
		Expect(d.Reason).To(Equal(decide.ReasonPolicyDeny))
		Expect(d.Policies).To(ContainElement(HaveField("Policy", pol.Name)))
		var version int64
		for _, m := range d.Policies {
			if m.Policy == pol.Name {
				version = m.Version
			}
		}
		resolved, err := chron.ListHistory(ctx, pool, chron.HistoryQuery{Kind: "Policy", Name: pol.Name, Generation: version})
		Expect(err).NotTo(HaveOccurred())
		Expect(resolved).To(HaveLen(1))
		var spec claiimv1.PolicySpec
		Expect(json.Unmarshal(resolved[0].Spec, &spec)).To(Succeed())
		Expect(root.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		Expect(equality.Semantic.DeepEqual(spec, pol.Spec)).To(BeTrue(), "generation %d from the history: %+v, stored: %+v", version, spec, pol.Spec)
	})
})

func changedBy(obj client.Object) claiimv1.ChangedBy {
	c, _ := claiimv1.ParseChangedBy(obj.GetAnnotations()[claiimv1.AnnotationChangedBy])
	return c
}

// decideAs runs the gate's decision for action on a snapshot of what the
// apiserver holds now.
func decideAs(a *claiimv1.Agent, action string) decide.Decision {
	GinkgoHelper()
	in := decide.Inputs{Keys: signer.Public()}
	orgs, skills, pols, agents, grants := &claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}, &claiimv1.AgentList{}, &claiimv1.CrossOrgGrantList{}
	for _, l := range []client.ObjectList{orgs, skills, pols, agents, grants} {
		Expect(root.List(ctx, l)).To(Succeed())
	}
	in.Orgs, in.Skills, in.Policies, in.Agents, in.Grants = orgs.Items, skills.Items, pols.Items, agents.Items, grants.Items
	s := decide.Build(in)
	ga, ok := s.Agent(a.Namespace, a.Name)
	Expect(ok).To(BeTrue())
	sv, _ := s.PinnedVersion(ga)
	id := ""
	if sv != nil {
		id = sv.ID
	}
	return decide.Decide(s, decide.Request{Agent: ga, Action: action, SkillVersionID: id, Now: clock.Now()})
}
