package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/token"
)

// Nothing the gate trusts is writable by others: the token lives in the
// Secret the manager signed, status is its signed projection, and what
// anyone else writes there is refused and rewritten.
var _ = Describe("Trust", func() {
	var (
		ns     string
		skill  *claiimv1.Skill
		o      *claiimv1.AIOrg
		signer *attest.Signer
	)
	BeforeEach(func() {
		ns = newNamespace()
		o = readyOrg(uniq("engineering"), "")
		skill = deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		var err error
		signer, err = controllers.LoadSigner(ctx, k8s, k8s, gateNamespace)
		Expect(err).NotTo(HaveOccurred())
	})

	secretOf := func(a *claiimv1.Agent) *corev1.Secret {
		GinkgoHelper()
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
		return sec
	}
	tokenCond := func(g Gomega, a *claiimv1.Agent) *metav1.Condition {
		c := cond(g, a, func() []metav1.Condition { return a.Status.Conditions }, claiimv1.ConditionTokenIssued)
		g.Expect(c).NotTo(BeNil())
		return c
	}
	// issued waits for the agent's token and returns it, with the status
	// signed as the gate will check it.
	issued := func(a *claiimv1.Agent) string {
		GinkgoHelper()
		var tok string
		Eventually(func(g Gomega) {
			g.Expect(tokenCond(g, a).Reason).To(Equal(claiimv1.ReasonTokenIssued))
			tok = string(secretOf(a).Data[claiimv1.SecretKeyAgentToken])
			g.Expect(a.Status.Token.Hash).To(Equal(token.Hash(tok)))
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
		return tok
	}
	forgeStatus := func(a *claiimv1.Agent, mutate func(*claiimv1.AgentStatus)) {
		GinkgoHelper()
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
				return err
			}
			mutate(&a.Status)
			return k8s.Status().Update(ctx, a)
		})).To(Succeed())
	}

	It("never adopts a token Secret it did not write, even one owned by the agent, once the status token is gone", func() {
		a := agent(ns, "victim", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		real := issued(a)

		By("an attacker replaces the Secret with one the agent controls, holding a token of their choosing")
		chosen, _, chosenHash := token.New()
		Expect(k8s.Delete(ctx, secretOf(a))).To(Succeed())
		fake := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.TokenSecretName(a.Name),
			Labels:          map[string]string{claiimv1.LabelAgentToken: "true", claiimv1.LabelAgentName: a.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(a, claiimv1.GroupVersion.WithKind("Agent"))}},
			Data: map[string][]byte{claiimv1.SecretKeyAgentToken: []byte(chosen)}}
		Expect(k8s.Create(ctx, fake)).To(Succeed())
		By("and empties the status token (a status writer, or a lost status write)")
		forgeStatus(a, func(s *claiimv1.AgentStatus) { s.Token = nil })

		Eventually(func(g Gomega) {
			c := tokenCond(g, a)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretConflict))
			g.Expect(c.Message).To(ContainSubstring("carries no signature of the manager"))
			g.Expect(c.Message).To(ContainSubstring(claiimv1.AnnotationRotateToken))
			g.Expect(a.Status.Token).NotTo(BeNil())
			g.Expect(a.Status.Token.Hash).To(BeEmpty(), "nothing is issued")
			g.Expect(a.Status.Token.RevokedAt).NotTo(BeNil())
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token.Hash).NotTo(Equal(chosenHash), "the chosen token is never adopted")
			g.Expect(a.Status.Token.Hash).NotTo(Equal(token.Hash(real)), "the replaced token does not come back")
			g.Expect(string(secretOf(a).Data[claiimv1.SecretKeyAgentToken])).To(Equal(chosen), "a Secret it did not write is never written into")
		}, "1s").Should(Succeed())
	})

	It("adopts its own signed Secret after a lost status write, and rewrites a forged status token", func() {
		a := agent(ns, "lost", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		real := issued(a)
		id := a.Status.Token.ID

		forgeStatus(a, func(s *claiimv1.AgentStatus) { s.Token = nil })
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token).NotTo(BeNil())
			g.Expect(a.Status.Token.ID).To(Equal(id), "the same token, not a new one")
		}).Should(Succeed())
		Expect(issued(a)).To(Equal(real))

		By("a token hash of someone's choosing, written through agents/status")
		_, _, chosenHash := token.New()
		forgeStatus(a, func(s *claiimv1.AgentStatus) { s.Token.Hash = chosenHash })
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Token.Hash).To(Equal(token.Hash(real)))
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
	})

	It("rotates the token on request, at once; deleting the Secret revokes it; a copied-back status never verifies", func() {
		a := agent(ns, "rotating", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		first := issued(a)
		before := a.DeepCopy()

		By("a rotation request")
		Expect(update(a, func() { metav1.SetMetaDataAnnotation(&a.ObjectMeta, claiimv1.AnnotationRotateToken, "2026-11-26") })).To(Succeed())
		var second string
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Annotations).To(HaveKeyWithValue(claiimv1.AnnotationTokenRotated, "2026-11-26"))
			second = string(secretOf(a).Data[claiimv1.SecretKeyAgentToken])
			g.Expect(second).NotTo(Equal(first))
			g.Expect(a.Status.Token.Hash).To(Equal(token.Hash(second)))
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
		Expect(a.Annotations[claiimv1.AnnotationTokenEpoch]).To(Equal("2"))

		By("the status from before the rotation, copied back, does not verify against the agent as it is now")
		replay := a.DeepCopy()
		replay.Status = before.Status
		Expect(signer.Verify(attest.Agent(replay), replay.Status.Attestation)).To(MatchError(attest.ErrBad))

		By("deleting the Secret revokes the token, and nothing new is issued unasked")
		Expect(k8s.Delete(ctx, secretOf(a))).To(Succeed())
		Eventually(func(g Gomega) {
			c := tokenCond(g, a)
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretMissing))
			g.Expect(c.Message).To(ContainSubstring("is revoked"))
			g.Expect(a.Status.Token.Hash).To(BeEmpty())
			g.Expect(a.Status.Token.RevokedAt).NotTo(BeNil())
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.TokenSecretName(a.Name)}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}, "500ms").Should(Succeed())

		By("a new rotation request issues a new token")
		Expect(update(a, func() { a.Annotations[claiimv1.AnnotationRotateToken] = "2026-11-27" })).To(Succeed())
		third := issued(a)
		Expect(third).NotTo(BeElementOf(first, second))
		Expect(a.Annotations[claiimv1.AnnotationTokenEpoch]).To(Equal("3"))
	})

	It("refuses a signed Secret put back from an older copy", func() {
		a := agent(ns, "restored", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		issued(a)
		old := secretOf(a).DeepCopy()
		Expect(update(a, func() { metav1.SetMetaDataAnnotation(&a.ObjectMeta, claiimv1.AnnotationRotateToken, "r1") })).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Annotations).To(HaveKeyWithValue(claiimv1.AnnotationTokenEpoch, "2"))
			g.Expect(tokenCond(g, a).Reason).To(Equal(claiimv1.ReasonTokenIssued))
		}).Should(Succeed())
		sec := secretOf(a)
		Expect(update(sec, func() { sec.Data, sec.Annotations = old.Data, old.Annotations })).To(Succeed())
		Eventually(func(g Gomega) {
			c := tokenCond(g, a)
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretConflict))
			g.Expect(c.Message).To(ContainSubstring("put back from a copy"))
			g.Expect(a.Status.Token.Hash).To(BeEmpty())
		}).Should(Succeed())
	})

	It("counts neither a grant phase nor an approval that the manager did not sign", func() {
		other := readyOrg(uniq("finance"), "")
		foreign := deployBot(uniq("ledger-bot"), other.Name)
		Expect(k8s.Create(ctx, foreign)).To(Succeed())
		a := agent(ns, "crosser", o.Name, foreign.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: uniq("grant")}, // nobody approved it
			Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: claiimv1.OrgName(other.Name), ReceivingOrg: claiimv1.OrgName(o.Name),
				Skills: []string{foreign.Name}, Duration: &metav1.Duration{Duration: time.Hour}}}
		Expect(k8s.Create(ctx, g)).To(Succeed())
		Eventually(func(gm Gomega) {
			gm.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			gm.Expect(g.Status.Phase).To(Equal(claiimv1.GrantPending))
		}).Should(Succeed())

		By("phase and expiry written through crossorggrants/status")
		exp := metav1.NewTime(time.Now().Add(24 * time.Hour))
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(g), g); err != nil {
				return err
			}
			g.Status.Phase, g.Status.ExpiresAt, g.Status.ActivatedAt = claiimv1.GrantActive, &exp, &exp
			return k8s.Status().Update(ctx, g)
		})).To(Succeed())
		Eventually(func(gm Gomega) {
			gm.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			gm.Expect(g.Status.Phase).To(Equal(claiimv1.GrantPending))
			gm.Expect(g.Status.ActivatedAt).To(BeNil())
		}).Should(Succeed())
		Consistently(func(gm Gomega) {
			gm.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			gm.Expect(a.Status.Phase).NotTo(Equal(claiimv1.AgentActive))
		}, "1s").Should(Succeed())

		By("approval annotations that did not come through admission")
		p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: uniq("pim"), Annotations: map[string]string{
			claiimv1.AnnotationApprovedBy: "peer@claiim.io", claiimv1.AnnotationApprovedAt: time.Now().UTC().Format(time.RFC3339),
			claiimv1.AnnotationApprovalAttestation: "v1." + signer.KeyID() + ".forged"}},
			Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Requester: "admin@claiim.io"}}
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func(gm Gomega) {
			c := cond(gm, p, func() []metav1.Condition { return p.Status.Conditions }, claiimv1.ConditionReady)
			gm.Expect(p.Status.Phase).To(Equal(claiimv1.PIMPending))
			gm.Expect(c.Message).To(ContainSubstring("elevates nobody"))
		}).Should(Succeed())
	})
})
