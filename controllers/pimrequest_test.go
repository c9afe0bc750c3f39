package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// The decisions' annotations are stamped by admission in a real cluster;
// this suite has no webhooks, so it writes them as admission would.
var _ = Describe("PIMRequest", func() {
	It("is Active once approved and turns Expired at its expiry, with no other event", func() {
		// Approved 59m57s ago for 1h: it expires in about 3s.
		at := time.Now().Add(-time.Hour + 3*time.Second).UTC().Truncate(time.Second)
		p := &claiimv1.PIMRequest{
			ObjectMeta: metav1.ObjectMeta{Name: uniq("pim"), Annotations: map[string]string{
				claiimv1.AnnotationApprovedBy: "peer@claiim.io", claiimv1.AnnotationApprovedAt: at.Format(time.RFC3339)}},
			Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Requester: "admin@claiim.io"},
		}
		createApproved(p)
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
			g.Expect(p.Status.ApprovedBy).To(BeEquivalentTo("peer@claiim.io"))
			g.Expect(p.Status.ExpiresAt.Time).To(BeTemporally("==", at.Add(time.Hour)))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMExpired))
		}).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", at.Add(time.Hour)), "expired no earlier than its expiry")
	})

	It("stays Pending without an approval, and reports Denied and Revoked", func() {
		mk := func(ann map[string]string) *claiimv1.PIMRequest {
			p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: uniq("pim"), Annotations: ann},
				Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Requester: "admin@claiim.io"}}
			Expect(k8s.Create(ctx, p)).To(Succeed())
			return p
		}
		for p, want := range map[*claiimv1.PIMRequest]claiimv1.PIMPhase{
			mk(nil): claiimv1.PIMPending,
			mk(map[string]string{claiimv1.AnnotationDeniedBy: "peer@claiim.io"}): claiimv1.PIMDenied,
			mk(map[string]string{claiimv1.AnnotationApprovedBy: "peer@claiim.io", claiimv1.AnnotationApprovedAt: time.Now().UTC().Format(time.RFC3339),
				claiimv1.AnnotationRevokedBy: "admin@claiim.io"}): claiimv1.PIMRevoked,
		} {
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
				g.Expect(p.Status.Phase).To(Equal(want))
				g.Expect(p.Status.Conditions).To(ContainElement(HaveField("Reason", string(want))))
			}).Should(Succeed())
		}
	})
})
