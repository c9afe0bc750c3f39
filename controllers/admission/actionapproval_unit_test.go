package admission

import (
	"context"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

const agentSA = "system:serviceaccount:agents:deploy-bot"

// heldCall is an ActionApproval as the manager makes it, approved by
// approvers (signed as admission signs).
func heldCall(required int32, approvers ...string) *claiimv1.ActionApproval {
	ap := &claiimv1.ActionApproval{ObjectMeta: metav1.ObjectMeta{Name: "0193a1b2-0000-7000-8000-000000000001", Namespace: "agents", UID: "uid-ap"},
		Spec: claiimv1.ActionApprovalSpec{Agent: "deploy-bot", AgentUID: "uid-bot", AgentServiceAccount: agentSA, Anchor: admin,
			Requester: "alice@claiim.io", Action: "payments:send", ContextDigest: "sha256:0",
			SkillVersionID: "payments-v1", ApprovalsRequired: required,
			RequestedAt: metav1.NewTime(t0.Add(-time.Minute)), ExpiresAt: metav1.NewTime(t0.Add(time.Hour))}}
	ap.Annotations = map[string]string{claiimv1.AnnotationRequestAttestation: signer.Sign(attest.ApprovalRequest(ap))}
	if len(approvers) > 0 {
		ap.Annotations[claiimv1.AnnotationApprovers] = claiimv1.ApproversJSON(approvers)
		ap.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.Approval(ap))
	}
	return ap
}

func TestActionApprovalRefusals(t *testing.T) {
	const bot = "system:serviceaccount:ops:approval-bot" // listed in the fixture's ApproverServiceAccounts
	for _, c := range []struct {
		name, user, want string
		ap               *claiimv1.ActionApproval
	}{
		{"a person with the verb", peer, "", heldCall(1)},
		{"the anchor counts as one", admin, "", heldCall(2, peer)},
		{"the agent's own ServiceAccount", agentSA, "AGENT_APPROVAL", heldCall(1)},
		{"the requester", "alice@claiim.io", "SELF_APPROVAL", heldCall(1)},
		{"another ServiceAccount", "system:serviceaccount:ops:ci", "SERVICEACCOUNT_APPROVER", heldCall(1)},
		{"a listed ServiceAccount", bot, "", heldCall(1)},
		{"the same person twice", peer, "SAME_APPROVER", heldCall(2, peer)},
		{"without the verb", "nobody@claiim.io", "NOT_AN_APPROVER", heldCall(1)},
		{"already approved", "ops@claiim.io", "DECISION_FINAL", heldCall(1, peer)},
		{"expired", peer, "DECISION_FINAL", func() *claiimv1.ActionApproval {
			ap := heldCall(1)
			ap.Spec.ExpiresAt = metav1.NewTime(t0)
			ap.Annotations[claiimv1.AnnotationRequestAttestation] = signer.Sign(attest.ApprovalRequest(ap))
			return ap
		}()},
		{"not made by the manager", peer, "NOT_FROM_CHRON", func() *claiimv1.ActionApproval {
			ap := heldCall(1)
			ap.Spec.Action = "payments:refund" // changed after the manager signed
			return ap
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			for _, u := range []string{peer, admin, agentSA, "alice@claiim.io", "ops@claiim.io", bot, "system:serviceaccount:ops:ci"} {
				f.may[u+" approve actionapprovals/"+c.ap.Name] = true
			}
			w := actionApprovalWebhook{f.h}
			next := c.ap.DeepCopy()
			next.Annotations[claiimv1.AnnotationApprove] = "ok"
			req := f.request(admissionv1.Update, c.user, c.ap, next)
			got, msg, err := w.refusal(context.Background(), req, c.ap, "approve")
			if err != nil || got != c.want {
				t.Fatalf("refusal = %q (%s), %v; want %q", got, msg, err, c.want)
			}
			// Default stamps and signs exactly what passes.
			ctx := admission.NewContextWithRequest(context.Background(), req)
			if err := w.Default(ctx, next); err != nil {
				t.Fatal(err)
			}
			_, left := next.Annotations[claiimv1.AnnotationApprove]
			stamped := len(next.Approvers()) > len(c.ap.Approvers())
			signed := signer.Verify(attest.Approval(next), next.Annotations[claiimv1.AnnotationApprovalAttestation]) == nil
			if (c.want == "") != (stamped && signed && !left) {
				t.Fatalf("stamped %v, signed %v, request left %v; want stamped and signed only when allowed", stamped, signed, left)
			}
		})
	}
}
