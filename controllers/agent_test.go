package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/token"
)

const anchor = "admin@claiim.io"

var _ = Describe("Agent", func() {
	var (
		ns    string
		o     *claiimv1.AIOrg
		skill *claiimv1.Skill
	)
	BeforeEach(func() {
		ns = newNamespace()
		o = readyOrg(uniq("engineering"), "")
		skill = deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(skill), skill)).To(Succeed())
			g.Expect(skill.Status.Versions).To(HaveLen(1))
		}).Should(Succeed())
	})

	ready := func(g Gomega, a *claiimv1.Agent) *metav1.Condition {
		return cond(g, a, func() []metav1.Condition { return a.Status.Conditions }, claiimv1.ConditionReady)
	}
	expectPhase := func(a *claiimv1.Agent, phase claiimv1.AgentPhase, reason string) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			c := ready(g, a)
			g.Expect(a.Status.Phase).To(Equal(phase), "Ready: %+v", c)
			want := metav1.ConditionFalse
			if phase == claiimv1.AgentActive {
				want = metav1.ConditionTrue
			}
			expectReady(g, c, want, reason)
		}).Should(Succeed())
	}
	tokenSecret := func(a *claiimv1.Agent) *corev1.Secret {
		GinkgoHelper()
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
		return sec
	}
	accept := func(a *claiimv1.Agent, by string) {
		GinkgoHelper()
		Expect(update(a, func() { a.SetAnnotations(map[string]string{claiimv1.AnnotationAnchorAccepted: by}) })).To(Succeed())
	}
	lifecycle := func(a *claiimv1.Agent, l claiimv1.AgentLifecycle) error {
		return update(a, func() { a.Spec.Lifecycle = l })
	}

	It("issues a 256-bit token into a Secret a pod can use with envFrom, keeping only its hash", func() {
		a := agent(ns, "prod-deploy-bot", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, claiimv1.AgentInactive, claiimv1.ReasonAnchorNotAccepted)

		Expect(a.Status.Token).NotTo(BeNil())
		sec := tokenSecret(a)
		tok := string(sec.Data[claiimv1.SecretKeyAgentToken])
		id, ok := token.ID(tok)
		Expect(ok).To(BeTrue(), "token has the clm_<id>_<secret> shape")
		Expect(a.Status.Token.ID).To(Equal(id))
		Expect(a.Status.Token.Hash).To(Equal(token.Hash(tok)))
		Expect(a.Status.Token.Hash).NotTo(ContainSubstring(tok))
		Expect(string(sec.Data[claiimv1.SecretKeySkillVersionID])).To(Equal(skill.Status.Versions[0].ID))
		Expect(string(sec.Data[claiimv1.SecretKeyGateURL])).To(Equal(testGateURL))
		Expect(a.Status.SkillVersionID).To(Equal(skill.Status.Versions[0].ID))
		Expect(a.Status.SkillDigest).To(Equal(skill.Status.Versions[0].Digest))
		Expect(metav1.IsControlledBy(sec, a)).To(BeTrue())
		Expect(sec.Labels).To(HaveKeyWithValue(claiimv1.LabelAgentToken, "true"))

		By("the token is never rewritten, while the skill version id follows a re-pin")
		Expect(update(skill, func() {
			skill.Spec.Versions = append(skill.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:*"}, []claiimv1.ActionPattern{"deploy:production"}))
		})).To(Succeed())
		Expect(update(a, func() { a.Spec.SkillRef.Version = 2; a.Spec.DisplayName = "renamed" })).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(skill), skill)).To(Succeed())
			g.Expect(skill.Status.Versions).To(HaveLen(2))
			sec := tokenSecret(a)
			g.Expect(string(sec.Data[claiimv1.SecretKeySkillVersionID])).To(Equal(skill.Status.Versions[1].ID))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(string(tokenSecret(a).Data[claiimv1.SecretKeyAgentToken])).To(Equal(tok))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token.ID).To(Equal(id))
		}, "1s").Should(Succeed())
	})

	It("walks Inactive -> Active -> Suspended -> Active -> Decommissioned, which is terminal and revokes the token", func() {
		a := agent(ns, "bot", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, claiimv1.AgentInactive, claiimv1.ReasonAnchorNotAccepted)
		Expect(ready(Default, a).Message).To(ContainSubstring(claiimv1.AnnotationAnchorAccepted))

		By("someone other than the anchor accepting changes nothing")
		accept(a, "peer@claiim.io")
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive))
		}, "500ms").Should(Succeed())

		accept(a, anchor)
		expectPhase(a, claiimv1.AgentActive, claiimv1.ReasonReconciled)

		Expect(lifecycle(a, claiimv1.LifecycleSuspended)).To(Succeed())
		expectPhase(a, claiimv1.AgentSuspended, claiimv1.ReasonSuspended)
		Expect(a.Status.Token.Hash).NotTo(BeEmpty(), "suspension keeps the token")

		Expect(lifecycle(a, claiimv1.LifecycleActive)).To(Succeed())
		expectPhase(a, claiimv1.AgentActive, claiimv1.ReasonReconciled)

		id := a.Status.Token.ID
		Expect(lifecycle(a, claiimv1.LifecycleDecommissioned)).To(Succeed())
		expectPhase(a, claiimv1.AgentDecommissioned, claiimv1.ReasonDecommissioned)
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token.Hash).To(BeEmpty())
			g.Expect(a.Status.Token.RevokedAt).NotTo(BeNil())
			g.Expect(a.Status.Token.ID).To(Equal(id), "the revoked token's id stays for the audit trail")
			g.Expect(a.Status.DecommissionedAt).NotTo(BeNil())
			err := k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: controllers.TokenSecretName(a.Name)}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "token Secret deleted: %v", err)
		}).Should(Succeed())

		By("no way back: the apiserver refuses reviving it or changing its spec")
		err := lifecycle(a, claiimv1.LifecycleActive)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("decommission"))
		err = update(a, func() { a.Spec.DisplayName = "zombie" })
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)

		By("and no new token is ever issued")
		Consistently(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: controllers.TokenSecretName(a.Name)}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}, "500ms").Should(Succeed())
	})

	It("stays Pending with a reason for a missing skill, version or org, and recovers", func() {
		missingSkill := agent(ns, "no-skill", o.Name, uniq("nope"), 1, anchor)
		missingVersion := agent(ns, "no-version", o.Name, skill.Name, 7, anchor)
		orgName := uniq("nowhere")
		missingOrg := agent(ns, "no-org", orgName, skill.Name, 1, anchor)
		for _, a := range []*claiimv1.Agent{missingSkill, missingVersion, missingOrg} {
			a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
			Expect(k8s.Create(ctx, a)).To(Succeed())
		}
		expectPhase(missingSkill, claiimv1.AgentPending, claiimv1.ReasonSkillNotFound)
		expectPhase(missingVersion, claiimv1.AgentPending, claiimv1.ReasonSkillVersionNotFound)
		Expect(ready(Default, missingVersion).Message).To(ContainSubstring("no version 7"))
		expectPhase(missingOrg, claiimv1.AgentPending, claiimv1.ReasonOrgNotFound)
		Expect(ready(Default, missingOrg).Message).To(ContainSubstring(orgName))

		By("a token is issued at provisioning even while pending")
		Expect(tokenSecret(missingSkill).Data).To(HaveKey(claiimv1.SecretKeyAgentToken))

		By("publishing the missing version activates the agent")
		Expect(update(skill, func() {
			for v := int32(2); v <= 7; v++ {
				skill.Spec.Versions = append(skill.Spec.Versions, skillVersion(v, []claiimv1.ActionPattern{"deploy:staging"}, nil))
			}
		})).To(Succeed())
		expectPhase(missingVersion, claiimv1.AgentActive, claiimv1.ReasonReconciled)
	})

	It("refuses a skill of another org", func() {
		other := readyOrg(uniq("finance"), "")
		foreign := deployBot(uniq("ledger-bot"), other.Name)
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		a := agent(ns, "crosser", o.Name, foreign.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, claiimv1.AgentPending, claiimv1.ReasonSkillOrgMismatch)
		Expect(ready(Default, a).Message).To(ContainSubstring("CrossOrgGrant"))
	})

	It("uses another org's skill only while an active grant covers it", func() {
		other := readyOrg(uniq("finance"), "")
		foreign := deployBot(uniq("ledger-bot"), other.Name)
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		a := agent(ns, "granted", o.Name, foreign.Name, 1, anchor)
		a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, claiimv1.AgentPending, claiimv1.ReasonSkillOrgMismatch)

		// Both sides' approvals as admission stamps them; the grant ends in
		// a few seconds.
		exp := metav1.NewTime(time.Now().Add(3 * time.Second))
		g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: uniq("grant"), Annotations: map[string]string{
			claiimv1.AnnotationGrantingApprovedBy: "cfo@claiim.io", claiimv1.AnnotationReceivingApprovedBy: "cto@claiim.io"}},
			Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: claiimv1.OrgName(other.Name), ReceivingOrg: claiimv1.OrgName(o.Name),
				Skills: []string{foreign.Name}, ExpiresAt: &exp}}
		Expect(k8s.Create(ctx, g)).To(Succeed())
		expectPhase(a, claiimv1.AgentActive, claiimv1.ReasonReconciled)

		By("the agent falls back to Pending the moment the grant expires, with no other event")
		expectPhase(a, claiimv1.AgentPending, claiimv1.ReasonSkillOrgMismatch)
		// metav1.Time is stored with second precision: compare to what was stored.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", g.Status.ExpiresAt.Time))
	})

	It("never takes over a Secret it does not own", func() {
		a := agent(ns, "squatted", o.Name, skill.Name, 1, anchor)
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.TokenSecretName(a.Name)},
			StringData: map[string]string{claiimv1.SecretKeyAgentToken: "not-ours"},
		}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			c := cond(g, a, func() []metav1.Condition { return a.Status.Conditions }, claiimv1.ConditionTokenIssued)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretConflict))
			g.Expect(c.Message).To(ContainSubstring("does not belong to this agent"))
			g.Expect(a.Status.Token).To(BeNil())
		}).Should(Succeed())
		Expect(string(tokenSecret(a).Data[claiimv1.SecretKeyAgentToken])).To(Equal("not-ours"))
	})

	It("reports a token Secret that was tampered with, and does not rewrite it", func() {
		a := agent(ns, "tampered", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, claiimv1.AgentInactive, claiimv1.ReasonAnchorNotAccepted)
		sec := tokenSecret(a)
		Expect(update(sec, func() {
			sec.Data[claiimv1.SecretKeyAgentToken] = []byte("clm_0000000000000000_forgedforgedforgedforgedforgedforgedforgedf")
		})).To(Succeed())
		Eventually(func(g Gomega) {
			c := cond(g, a, func() []metav1.Condition { return a.Status.Conditions }, claiimv1.ConditionTokenIssued)
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretConflict))
		}).Should(Succeed())
		Expect(string(tokenSecret(a).Data[claiimv1.SecretKeyAgentToken])).To(HavePrefix("clm_0000000000000000_forged"))
	})
})
