package decide

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// approvalInputs add to the seed a rule that holds deploy:staging above
// 100 replicas for approval, and allow the bot payments:send by skill.
func approvalInputs(required int32) Inputs {
	in := seedInputs()
	in.Policies = append(in.Policies, claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "big-deploys", Generation: 2},
		Spec: claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{{Name: "approve-big", Effect: claiimv1.PolicyEffectRequireApproval,
			Actions: []claiimv1.ActionPattern{"deploy:staging"}, Condition: "context.replicas > 100",
			ApprovalsRequired: required, ApprovalTTLSeconds: 600}}}})
	return in
}

var bigCtx = map[string]any{"replicas": float64(200)}

// approvalFor is the ActionApproval the manager would make for the bot's
// call, approved by users and signed as admission signs.
func approvalFor(t *testing.T, in Inputs, id string, required int32, users ...string) *claiimv1.ActionApproval {
	t.Helper()
	s := buildSigned(in)
	a, _ := s.Agent("default", "bot")
	sv, _ := s.PinnedVersion(a)
	ap := &claiimv1.ActionApproval{
		ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: "default", UID: "uid-ap", Annotations: map[string]string{}},
		Spec: claiimv1.ActionApprovalSpec{Agent: "bot", AgentUID: a.UID, Action: "deploy:staging", ContextDigest: ContextDigest(bigCtx),
			SkillVersionID: sv.ID, ApprovalsRequired: required,
			RequestedAt: metav1.NewTime(now.Add(-time.Minute)), ExpiresAt: metav1.NewTime(now.Add(9 * time.Minute))},
	}
	if len(users) > 0 {
		ap.Annotations[claiimv1.AnnotationApprovers] = claiimv1.ApproversJSON(users)
		ap.Annotations[claiimv1.AnnotationApprovalAttestation] = testSigner.Sign(attest.Approval(ap))
	}
	return ap
}

func withApproval(id string, ap *claiimv1.ActionApproval, ctx map[string]any) func(*Request) {
	return func(r *Request) { r.ApprovalID, r.Approval, r.ContextDigest = id, ap, ContextDigest(ctx) }
}

func TestRequireApproval(t *testing.T) {
	const id = "0193a1b2-0000-7000-8000-000000000001"
	in := approvalInputs(1)
	signedBy := func(mut func(*claiimv1.ActionApproval), users ...string) *claiimv1.ActionApproval {
		ap := approvalFor(t, in, id, 1, users...)
		if mut != nil {
			mut(ap)
			if len(users) > 0 {
				ap.Annotations[claiimv1.AnnotationApprovalAttestation] = testSigner.Sign(attest.Approval(ap))
			}
		}
		return ap
	}
	cases := []struct {
		name    string
		in      Inputs
		action  string
		ctx     map[string]any
		req     func(*Request)
		outcome Outcome
		reason  string
		msg     string
	}{
		{name: "condition false: no approval needed", in: in, action: "deploy:staging", ctx: map[string]any{"replicas": float64(3)}, outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "no approval presented", in: in, action: "deploy:staging", ctx: bigCtx, outcome: Deny, reason: ReasonApprovalRequired, msg: "policy big-deploys rule approve-big requires 1 person"},
		{name: "a sub-action is held too", in: func() Inputs {
			in := approvalInputs(1)
			in.Skills[0].Spec.Versions[0].AllowedActions = append(in.Skills[0].Spec.Versions[0].AllowedActions, "deploy:staging:eu")
			return in
		}(), action: "deploy:staging:eu", ctx: bigCtx, outcome: Deny, reason: ReasonApprovalRequired},
		{name: "deny still wins", in: func() Inputs {
			in := approvalInputs(1)
			in.Policies = append(in.Policies, claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "freeze", Generation: 1},
				Spec: claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{{Name: "freeze", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:*"}}}}})
			return in
		}(), action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil, "peer@claiim.io"), bigCtx), outcome: Deny, reason: ReasonPolicyDeny},
		{name: "an Audit policy holds nothing", in: func() Inputs {
			in := approvalInputs(1)
			in.Policies[1].Spec.Enforcement = claiimv1.PolicyAudit
			return in
		}(), action: "deploy:staging", ctx: bigCtx, outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "never allows by itself", in: in, action: "deploy:canary", ctx: bigCtx, outcome: Deny, reason: ReasonNotPermitted},
		{name: "approved: allowed once", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil, "peer@claiim.io"), bigCtx),
			outcome: Allow, reason: ReasonOwnAIOrg, msg: "approval " + id + " by peer@claiim.io"},
		{name: "not yet materialized", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, nil, bigCtx), outcome: Deny, reason: ReasonApprovalPending},
		{name: "no approvers yet", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil), bigCtx), outcome: Deny, reason: ReasonApprovalPending, msg: "0 of 1"},
		{name: "approvers not signed", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, func() *claiimv1.ActionApproval {
			ap := signedBy(nil)
			ap.Annotations[claiimv1.AnnotationApprovers] = `["peer@claiim.io"]`
			return ap
		}(), bigCtx), outcome: Deny, reason: ReasonApprovalPending, msg: "count for nothing"},
		{name: "other context", in: in, action: "deploy:staging", ctx: map[string]any{"replicas": float64(900)},
			req: func(r *Request) {
				withApproval(id, signedBy(nil, "peer@claiim.io"), map[string]any{"replicas": float64(900)})(r)
			}, outcome: Deny, reason: ReasonApprovalMismatch, msg: "context differs"},
		{name: "other agent", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(func(ap *claiimv1.ActionApproval) { ap.Spec.AgentUID = "someone-else" }, "peer@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalMismatch, msg: "agent differs"},
		{name: "other skill version", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(func(ap *claiimv1.ActionApproval) { ap.Spec.SkillVersionID = "deploy-bot-v0" }, "peer@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalMismatch, msg: "skill version differs"},
		{name: "other id", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval("another", signedBy(nil, "peer@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalMismatch},
		{name: "expired", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(func(ap *claiimv1.ActionApproval) { ap.Spec.ExpiresAt = metav1.NewTime(now) }, "peer@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalExpired},
		{name: "denied", in: in, action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(func(ap *claiimv1.ActionApproval) {
			ap.Annotations[claiimv1.AnnotationDeniedBy] = "peer@claiim.io"
			ap.Annotations[claiimv1.AnnotationDeny] = "too big for a Friday"
		}), bigCtx), outcome: Deny, reason: ReasonApprovalDenied, msg: "too big for a Friday"},
		{name: "two required, one given", in: approvalInputs(2), action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil, "admin@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalPending, msg: "1 of 2"},
		{name: "two required, two given", in: approvalInputs(2), action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil, "admin@claiim.io", "peer@claiim.io"), bigCtx),
			outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "the same person twice is one", in: approvalInputs(2), action: "deploy:staging", ctx: bigCtx, req: withApproval(id, signedBy(nil, "admin@claiim.io", "admin@claiim.io"), bigCtx),
			outcome: Deny, reason: ReasonApprovalPending, msg: "1 of 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mut []func(*Request)
			if c.req != nil {
				mut = append(mut, c.req)
			}
			d := decide(t, c.in, "bot", c.action, c.ctx, mut...)
			if d.Outcome != c.outcome || d.Reason != c.reason || !strings.Contains(d.Message, c.msg) {
				t.Fatalf("got %s %s (%s), want %s %s containing %q", d.Outcome, d.Reason, d.Message, c.outcome, c.reason, c.msg)
			}
			if d.Outcome == Allow && c.req != nil && (d.Approval == nil || d.Approval.Use != id) {
				t.Fatalf("an approved ALLOW must name the approval it uses: %+v", d.Approval)
			}
			if d.Reason == ReasonApprovalRequired && (d.Approval == nil || d.Approval.TTL != 10*time.Minute || d.Approval.Policy != "big-deploys") {
				t.Fatalf("the requirement is not recorded: %+v", d.Approval)
			}
		})
	}
}

func TestApprovalRuleBounds(t *testing.T) {
	cp, err := CompilePolicy(&claiimv1.Policy{Spec: claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{
		{Name: "a", Effect: claiimv1.PolicyEffectRequireApproval, Actions: []claiimv1.ActionPattern{"x"}},
		{Name: "b", Effect: claiimv1.PolicyEffectRequireApproval, Actions: []claiimv1.ActionPattern{"x"}, ApprovalsRequired: 3},
	}}})
	if err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("3 approvers compiled: %v", err)
	}
	if r := cp.Rules[0]; r.ApprovalsRequired != 1 || r.ApprovalTTL != time.Hour {
		t.Fatalf("defaults: %+v", r)
	}
	if r := cp.Rules[1]; r.Effect != claiimv1.PolicyEffectDeny || r.Broken == "" {
		t.Fatalf("a broken RequireApproval rule must deny: %+v", r)
	}
}

func TestContextDigest(t *testing.T) {
	a := ContextDigest(map[string]any{"b": 1.0, "a": []any{"x"}})
	b := ContextDigest(map[string]any{"a": []any{"x"}, "b": 1.0})
	if a != b || !strings.HasPrefix(a, "sha256:") || len(a) != 71 {
		t.Fatalf("digest not canonical: %s %s", a, b)
	}
	if ContextDigest(nil) != ContextDigest(map[string]any{}) || a == ContextDigest(map[string]any{"b": 2.0, "a": []any{"x"}}) {
		t.Fatal("digest does not tell contexts apart")
	}
}
