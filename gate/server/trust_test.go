package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/gate/token"
	"github.com/claiim/claiim-operator/test/testenv"
)

// What the gate trusts, attacked through the apiserver by someone who may
// write */status, Secrets and (for grants) the objects' status: none of it
// yields an answer the manager did not sign.
var _ = Describe("Trust", func() {
	// forgeStatus writes obj's status as a status writer would.
	forgeStatus := func(obj client.Object, mutate func()) {
		GinkgoHelper()
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			mutate()
			return k8s.Status().Update(ctx, obj)
		})).To(Succeed())
	}
	// never checks that tok does not authenticate, while the manager
	// catches up with whatever was forged.
	never := func(tok, svID string) {
		GinkgoHelper()
		Consistently(func(g Gomega) {
			status, body := validate(tok, map[string]any{"action": "deploy:staging", "skill_version_id": svID})
			g.Expect(status).To(Equal(http.StatusUnauthorized), "%v", body)
			g.Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
		}, "1500ms", "20ms").Should(Succeed())
	}
	allowed := func(w *world) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			_, body := w.ask("deploy:staging", nil)
			g.Expect(body).To(HaveKeyWithValue("outcome", "ALLOW"))
		}).Should(Succeed())
	}

	It("refuses a token hash written through agents/status", func() {
		w := newWorld(worldOpts{accepted: true})
		allowed(w)
		chosen, _, chosenHash := token.New()
		forgeStatus(w.agent, func() { w.agent.Status.Token.Hash = chosenHash })
		never(chosen, w.svID)
		allowed(w) // the manager rewrote its own status
	})

	It("refuses a token from a Secret the manager did not write, once the status token is gone", func() {
		w := newWorld(worldOpts{accepted: true})
		allowed(w)
		chosen, _, _ := token.New()
		name := controllers.TokenSecretName(w.agent.Name)
		Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name}})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name,
			Labels:          map[string]string{claiimv1.LabelAgentToken: "true"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(w.agent, claiimv1.GroupVersion.WithKind("Agent"))}},
			Data: map[string][]byte{claiimv1.SecretKeyAgentToken: []byte(chosen)}})).To(Succeed())
		forgeStatus(w.agent, func() { w.agent.Status.Token = nil })
		never(chosen, w.svID)
		never(w.token, w.svID) // the replaced token is gone too: its Secret was deleted
	})

	It("never answers for the wrong agent when another claims the same token id", func() {
		a, b := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
		allowed(a)
		forgeStatus(b.agent, func() { b.agent.Status.Token = a.agent.Status.Token.DeepCopy() })
		Consistently(func(g Gomega) {
			status, body := post("/v/init", a.token, map[string]any{})
			g.Expect(status).To(Equal(http.StatusOK), "%v", body)
			g.Expect(body).To(HaveKeyWithValue("agent", a.ns+"/"+a.agent.Name))
		}, "1500ms", "20ms").Should(Succeed())
	})

	It("never lets a pending agent act on a phase written through agents/status", func() {
		w := newWorld(worldOpts{accepted: true})
		_, ledger := financeLedger()
		// An org-wide Allow: an Active agent of the org may read the ledger.
		Expect(k8s.Create(ctx, &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("ledger-readers")}, Spec: claiimv1.PolicySpec{
			Org: claiimv1.OrgName(w.org), Rules: []claiimv1.PolicyRule{{Name: "read", Effect: claiimv1.PolicyEffectAllow, Actions: []claiimv1.ActionPattern{"ledger:read"}}}}})).To(Succeed())
		// Pinned to another org's skill, no grant: Pending.
		w.update(func(a *claiimv1.Agent) { a.Spec.SkillRef.Name = ledger })
		w.waitPhase(claiimv1.AgentPending)
		var svID string
		Eventually(func(g Gomega) { svID = ledgerID(g, ledger) }).Should(Succeed())

		forgeStatus(w.agent, func() {
			w.agent.Status.Phase, w.agent.Status.ObservedGeneration = claiimv1.AgentActive, w.agent.Generation
		})
		Consistently(func(g Gomega) {
			_, body := validate(w.token, map[string]any{"action": "ledger:read", "skill_version_id": svID})
			g.Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
		}, "1500ms", "20ms").Should(Succeed())
	})

	It("never counts a grant whose phase and expiry were written through crossorggrants/status", func() {
		w := newWorld(worldOpts{accepted: true})
		finance, ledger := financeLedger()
		grant := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: uniq("grant")}, // nobody approved it
			Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: claiimv1.OrgName(finance), ReceivingOrg: claiimv1.OrgName(w.org),
				Skills: []string{ledger}, Duration: &metav1.Duration{Duration: time.Hour}}}
		Expect(k8s.Create(ctx, grant)).To(Succeed())
		w.update(func(a *claiimv1.Agent) { a.Spec.SkillRef.Name = ledger })
		w.waitPhase(claiimv1.AgentPending)
		var svID string
		Eventually(func(g Gomega) { svID = ledgerID(g, ledger) }).Should(Succeed())

		exp := metav1.NewTime(time.Now().Add(24 * time.Hour))
		forgeStatus(grant, func() {
			grant.Status.Phase, grant.Status.ActivatedAt, grant.Status.ExpiresAt = claiimv1.GrantActive, &exp, &exp
		})
		Consistently(func(g Gomega) {
			_, body := validate(w.token, map[string]any{"action": "ledger:read", "skill_version_id": svID})
			g.Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
		}, "1500ms", "20ms").Should(Succeed())
	})

	It("stops the old token at once on rotation and revokes it when its Secret is deleted, each step in Chron", func() {
		w := newWorld(worldOpts{accepted: true})
		allowed(w)
		old := w.token
		w.update(func(a *claiimv1.Agent) {
			metav1.SetMetaDataAnnotation(&a.ObjectMeta, claiimv1.AnnotationRotateToken, "2026-11-26")
		})
		sec := &corev1.Secret{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: controllers.TokenSecretName(w.agent.Name)}, sec)).To(Succeed())
			w.token = string(sec.Data[claiimv1.SecretKeyAgentToken])
			g.Expect(w.token).NotTo(Equal(old))
		}).Should(Succeed())
		allowed(w)
		status, body := validate(old, map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusUnauthorized), "%v", body)

		Expect(k8s.Delete(ctx, sec)).To(Succeed())
		Eventually(func(g Gomega) {
			status, _ := validate(w.token, map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
			g.Expect(status).To(Equal(http.StatusUnauthorized))
		}).Should(Succeed())
	})

	It("refuses every agent, saying why, while it holds no attestation keys", func() {
		w := newWorld(worldOpts{accepted: true})
		allowed(w)
		src, err := server.NewSource(cfg, testenv.Scheme())
		Expect(err).NotTo(HaveOccurred())
		src.KeysFrom = types.NamespacedName{Namespace: keysRef.Namespace, Name: "no-such-keys"}
		src.IgnoreAdmission = true
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			Expect(src.Run(sctx)).To(Succeed())
		}()
		DeferCleanup(func() { stop(); <-done })
		writer, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/keyless-test", CommitTimeout: time.Second})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(writer.Close)
		hs := httptest.NewServer((&server.Server{Snapshots: src, Log: writer, DB: pool, Replica: "keyless", Logger: logf.Log.WithName("keyless")}).Handler())
		DeferCleanup(hs.Close)
		Eventually(src.Ready).Should(Succeed())

		saved := gateURL
		gateURL = hs.URL
		defer func() { gateURL = saved }()
		status, body := w.ask("deploy:staging", nil)
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(body).To(HaveKeyWithValue("reason", "UNAUTHENTICATED"))
		Expect(body["message"]).To(ContainSubstring("no attestation keys are loaded"))
		Expect(body["message"]).To(ContainSubstring("claiim-attestation-keys"))
	})
})

// financeLedger makes another org, finance, with a skill that allows
// ledger:read: what a trusted grant or status would let an agent use.
func financeLedger() (finance, ledger string) {
	GinkgoHelper()
	finance, ledger = uniq("finance"), uniq("ledger")
	Expect(k8s.Create(ctx, &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: finance}})).To(Succeed())
	Expect(k8s.Create(ctx, &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: ledger}, Spec: claiimv1.SkillSpec{Org: claiimv1.OrgName(finance),
		Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "ledger@yourcompany.com", AllowedActions: []claiimv1.ActionPattern{"ledger:read"}}}}})).To(Succeed())
	return finance, ledger
}
