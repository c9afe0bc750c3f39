package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/testenv"
)

// A manager of its own, with a pending TTL of seconds and a real Chron:
// the suite's manager keeps the 24h default.
func TestPIMPendingExpiryAndApprovals(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	const ttl = 8 * time.Second // long enough to see the approval cases Pending first
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	env := testenv.Setup(t, testenv.Options{
		Chron:   true,
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllers.DefaultNamespace}}},
		Manager: &testenv.Manager{Cache: controllers.CacheOptions(), Setup: func(ctx context.Context, mgr ctrl.Manager, env *testenv.Env) error {
			w, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "manager/test"})
			if err != nil {
				return err
			}
			env.OnStop(w.Close)
			return controllers.Setup(ctx, mgr, controllers.Options{GateURL: testGateURL, Log: w, PIMPendingTTL: ttl})
		}},
	})
	ctx, k := env.Context(), env.Client
	get := func(g Gomega, p *claiimv1.PIMRequest) *claiimv1.PIMRequest {
		g.Expect(k.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		return p
	}
	newRequest := func(required int32) *claiimv1.PIMRequest {
		p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: uniq("pim")},
			Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Requester: "admin@claiim.io", ApprovalsRequired: required}}
		g.Expect(k.Create(ctx, p)).To(Succeed())
		return p
	}

	// Two approvers required: only distinct, signed approvers besides the
	// requester count, even under a validly signed final approval. This
	// suite has no webhooks: it signs as admission does.
	signer, err := controllers.LoadSigner(ctx, k, k, controllers.DefaultNamespace)
	g.Expect(err).NotTo(HaveOccurred())
	approve := func(p *claiimv1.PIMRequest, by ...claiimv1.Username) {
		t.Helper()
		g.Expect(k.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		patch := client.MergeFrom(p.DeepCopy())
		at := time.Now().UTC().Format(time.RFC3339)
		var recs []claiimv1.PIMApprovalRecord
		for _, b := range by {
			recs = append(recs, claiimv1.PIMApprovalRecord{By: b, At: at, Attestation: signer.Sign(attest.PIMApprovalEntry(p, b, at))})
		}
		p.SetApprovalRecords(recs)
		p.Annotations[claiimv1.AnnotationApprovedBy], p.Annotations[claiimv1.AnnotationApprovedAt] = string(by[len(by)-1]), at
		p.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.PIMApproval(p))
		g.Expect(k.Patch(ctx, p, patch)).To(Succeed())
	}
	for name, approvers := range map[string][]claiimv1.Username{
		"one approver":                         {"peer@claiim.io"},
		"the same approver twice":              {"peer@claiim.io", "peer@claiim.io"},
		"the requester as the second":          {"peer@claiim.io", "admin@claiim.io"},
		"two distinct approvers, one unsigned": {"peer@claiim.io", "ciso@claiim.io"},
	} {
		p := newRequest(2)
		approve(p, approvers...)
		if name == "two distinct approvers, one unsigned" {
			patch := client.MergeFrom(p.DeepCopy())
			recs, _ := p.ApprovalRecords()
			recs[0].Attestation = recs[1].Attestation
			p.SetApprovalRecords(recs)
			g.Expect(k.Patch(ctx, p, patch)).To(Succeed())
		}
		g.Eventually(func(g Gomega) {
			g.Expect(get(g, p).Status.Phase).To(Equal(claiimv1.PIMPending), name)
			g.Expect(p.Status.Conditions).To(ContainElement(HaveField("Message", ContainSubstring("elevates nobody"))), name)
		}).Should(Succeed())
	}
	two := newRequest(2)
	approve(two, "peer@claiim.io", "ciso@claiim.io")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, two).Status.Phase).To(Equal(claiimv1.PIMActive))
		g.Expect(two.Status.Approvals).To(HaveExactElements(HaveField("By", claiimv1.Username("peer@claiim.io")), HaveField("By", claiimv1.Username("ciso@claiim.io"))))
		g.Expect(two.Status.PendingExpiresAt).To(BeNil())
	}).Should(Succeed())

	// Nobody approves: Expired at its deadline, woken by nothing but its
	// requeue, and recorded in Chron.
	p := newRequest(1)
	deadline := p.CreationTimestamp.Add(ttl)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, p).Status.PendingExpiresAt).NotTo(BeNil())
		g.Expect(p.Status.PendingExpiresAt.Time).To(BeTemporally("==", deadline))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, p).Status.Phase).To(Equal(claiimv1.PIMExpired))
		g.Expect(p.Status.Conditions).To(ContainElement(And(HaveField("Reason", claiimv1.ReasonPendingExpired),
			HaveField("Message", ContainSubstring("PIM_PENDING_EXPIRED")), HaveField("Message", ContainSubstring("new PIMRequest")))))
	}).Should(Succeed())
	g.Expect(time.Now()).To(BeTemporally(">=", deadline), "expired no earlier than its deadline")
	g.Eventually(func(g Gomega) {
		rows, _, err := chron.List(ctx, env.Chron, chron.Filter{Kind: string(chron.KindPIMExpired), Limit: 100})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rows).To(ContainElement(And(HaveField("Reason", "PIM_PENDING_EXPIRED"), HaveField("Actor", "admin@claiim.io"),
			HaveField("Context", HaveKeyWithValue("name", p.Name)))))
	}).Should(Succeed())
}
