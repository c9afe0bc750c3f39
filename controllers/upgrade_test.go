package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/token"
)

// An agent as the first release left it: a token Secret with no
// signature, the token's id and hash in an unsigned status, no token
// epoch. test/upgrade does the same with the first release's binaries.
var _ = Describe("Upgrade from unsigned token Secrets", func() {
	It("rotates the legacy token at once, with a Warning event saying to restart the workloads", func() {
		ns := newNamespace()
		o := readyOrg(uniq("engineering"), "")
		skill := deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		signer, err := controllers.LoadSigner(ctx, k8s, k8s, gateNamespace)
		Expect(err).NotTo(HaveOccurred())
		a := agent(ns, "wave-one", o.Name, skill.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		key := client.ObjectKey{Namespace: ns, Name: controllers.TokenSecretName(a.Name)}
		signed := &corev1.Secret{}
		Eventually(func() error { return k8s.Get(ctx, key, signed) }).Should(Succeed())

		By("the first release's state: its Secret, its status, no epoch")
		legacy, legacyID, legacyHash := token.New()
		Expect(k8s.Delete(ctx, signed)).To(Succeed())
		old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name,
			Labels:          map[string]string{claiimv1.LabelAgentToken: "true", claiimv1.LabelAgentName: a.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(a, claiimv1.GroupVersion.WithKind("Agent"))}},
			Data: map[string][]byte{claiimv1.SecretKeyAgentToken: []byte(legacy), claiimv1.SecretKeyGateURL: []byte("http://old-gate/v")}}
		Expect(k8s.Create(ctx, old)).To(Succeed())
		// The manager reconciles between these writes and may rewrite the
		// status from its own records: the state is put back until it
		// holds, and only while the old Secret is still there.
		legacyState := func() {
			GinkgoHelper()
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
					return err
				}
				delete(a.Annotations, claiimv1.AnnotationTokenEpoch)
				return k8s.Update(ctx, a)
			})).To(Succeed())
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
					return err
				}
				a.Status.Attestation = ""
				a.Status.Token = &claiimv1.AgentToken{ID: legacyID, Hash: legacyHash, SecretName: key.Name, IssuedAt: &metav1.Time{Time: time.Now()}}
				return k8s.Status().Update(ctx, a)
			})).To(Succeed())
		}
		legacyState()

		By("the manager replaces the Secret with a signed one holding a new token")
		var fresh string
		Eventually(func(g Gomega) {
			sec := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, key, sec)).To(Succeed())
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			if sec.UID == old.UID && (a.Annotations[claiimv1.AnnotationTokenEpoch] != "" || a.Status.Attestation != "" ||
				a.Status.Token == nil || a.Status.Token.ID != legacyID) {
				legacyState()
			}
			g.Expect(sec.UID).NotTo(Equal(old.UID), "a new Secret, not the old one written into")
			g.Expect(sec.Annotations).To(HaveKey(claiimv1.AnnotationSecretAttestation))
			fresh = string(sec.Data[claiimv1.SecretKeyAgentToken])
			g.Expect(fresh).NotTo(Equal(legacy))
			g.Expect(string(sec.Data[claiimv1.SecretKeyGateURL])).To(Equal(testGateURL))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Annotations).To(HaveKeyWithValue(claiimv1.AnnotationTokenEpoch, "1"))
			g.Expect(a.Status.Token.Hash).To(Equal(token.Hash(fresh)))
			g.Expect(signer.Verify(attest.Agent(a), a.Status.Attestation)).To(Succeed())
		}).Should(Succeed())
		Expect(a.Status.Token.Hash).NotTo(Equal(legacyHash), "the legacy token no longer authenticates")

		By("the notice: a Warning event naming both tokens and what to do")
		Eventually(func(g Gomega) {
			evs := &eventsv1.EventList{}
			g.Expect(k8s.List(ctx, evs, client.InNamespace(ns))).To(Succeed())
			g.Expect(evs.Items).To(ContainElement(And(HaveField("Regarding.Name", a.Name), HaveField("Type", corev1.EventTypeWarning),
				HaveField("Reason", "TokenRotatedOnUpgrade"), HaveField("Note", And(ContainSubstring(legacyID), ContainSubstring(a.Status.Token.ID),
					ContainSubstring("Restart the agent's workloads"))))))
		}).Should(Succeed())

		By("once the agent has a signed token, an unsigned Secret is refused, never rotated")
		Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}})).To(Succeed())
		planted, _, _ := token.New()
		old.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: key.Name, Labels: old.Labels, OwnerReferences: old.OwnerReferences}
		old.Data = map[string][]byte{claiimv1.SecretKeyAgentToken: []byte(planted)}
		Expect(k8s.Create(ctx, old)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			c := cond(g, a, func() []metav1.Condition { return a.Status.Conditions }, claiimv1.ConditionTokenIssued)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonTokenSecretConflict))
		}).Should(Succeed())
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, key, sec)).To(Succeed())
		Expect(sec.UID).To(Equal(old.UID))
		Expect(string(sec.Data[claiimv1.SecretKeyAgentToken])).To(Equal(planted))
	})
})
