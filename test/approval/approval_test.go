package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
	"github.com/claiim/claiim-operator/gate/decide"
)

const agentName = "prod-deploy-bot"

var (
	seedOnce         sync.Once
	agentToken, svID string
)

// seed makes, as admin under a PIM session peer approved, the seed's org,
// skill and agent (bound to its ServiceAccount) and a policy that holds
// big deploys for one approver and huge ones for two.
func seed(t *testing.T) {
	t.Helper()
	seedOnce.Do(func() {
		g := NewWithT(t)
		admin, peer := env.As(adminUser), env.As(peerUser)
		pim := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "onboarding-"},
			Spec: claiimv1.PIMRequestSpec{Reason: "Onboarding -- a deploy bot whose big deploys need approval"}}
		g.Expect(admin.Create(ctx, pim)).To(Succeed())
		g.Expect(annotate(peer, pim, claiimv1.AnnotationApprove, "ok")).To(Succeed())
		objs := []client.Object{
			&claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}, Spec: claiimv1.AIOrgSpec{DisplayName: "Engineering"}},
			&claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "deploy-bot"}, Spec: claiimv1.SkillSpec{Org: "engineering", DisplayName: "Deploy Bot",
				Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "deploy-bot@yourcompany.com",
					AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}}}}},
			&claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "big-deploys"}, Spec: claiimv1.PolicySpec{Org: "engineering",
				Rules: []claiimv1.PolicyRule{
					{Name: "approve-big", Effect: claiimv1.PolicyEffectRequireApproval, Actions: []claiimv1.ActionPattern{"deploy:staging"},
						Condition: "context.replicas > 10", ApprovalTTLSeconds: 600},
					{Name: "approve-huge", Effect: claiimv1.PolicyEffectRequireApproval, Actions: []claiimv1.ActionPattern{"deploy:staging"},
						Condition: "context.replicas > 100", ApprovalsRequired: 2},
				}}},
			&claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Name: agentName, Namespace: "default"}, Spec: claiimv1.AgentSpec{Org: "engineering",
				DisplayName: "Prod Deploy Bot", AccountabilityAnchor: adminUser, SkillRef: claiimv1.SkillRef{Name: "deploy-bot", Version: 1},
				ServiceAccountName: "deploy-bot"}},
		}
		for _, o := range objs {
			g.Eventually(func() error { return admin.Create(ctx, o) }).WithTimeout(20*time.Second).Should(Succeed(), "creating %s", o.GetName())
		}
		g.Eventually(func(g Gomega) {
			sec := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: agentName + "-claiim-token"}, sec)).To(Succeed())
			agentToken, svID = string(sec.Data[claiimv1.SecretKeyAgentToken]), string(sec.Data[claiimv1.SecretKeySkillVersionID])
			for i := range gates { // both replicas see the agent, the skill and the policy
				_, r := ask(i, "deploy:staging", map[string]any{"replicas": 1.0}, "")
				g.Expect(r.Outcome).To(Equal(api.Allow), r.Message)
				_, r = ask(i, "deploy:staging", map[string]any{"replicas": 11.0, "probe": true}, "")
				g.Expect(r.Reason).To(Equal(api.ReasonApprovalRequired), r.Message)
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
	if agentToken == "" {
		t.Fatal("the seed did not come up")
	}
}

// annotate sets one annotation as the client's user.
func annotate(c client.Client, obj client.Object, key, value string) error {
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[key] = value
	obj.SetAnnotations(ann)
	return c.Patch(ctx, obj, patch)
}

// decideAs has user approve (or deny) approval id.
func decideAs(user, id, key, comment string) error {
	ap := &claiimv1.ActionApproval{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: id}, ap); err != nil {
		return err
	}
	return annotate(env.As(user), ap, key, comment)
}

// ask posts one call to gate replica i as the agent.
func ask(i int, action string, actx map[string]any, approvalID string) (int, api.ValidateResponse) {
	body, _ := json.Marshal(api.ValidateRequest{Action: action, Context: actx, SkillVersionID: svID, ApprovalID: approvalID})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gates[i]+"/v/validate", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, api.ValidateResponse{Reason: err.Error()}
	}
	defer resp.Body.Close()
	var r api.ValidateResponse
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

// requested asks for a held call and waits for its ActionApproval.
func requested(t *testing.T, actx map[string]any) (string, *claiimv1.ActionApproval) {
	t.Helper()
	g := NewWithT(t)
	status, r := ask(0, "deploy:staging", actx, "")
	g.Expect(status).To(Equal(http.StatusForbidden))
	g.Expect(r.Outcome).To(Equal(api.Deny))
	g.Expect(r.Reason).To(Equal(api.ReasonApprovalRequired), r.Message)
	g.Expect(r.ApprovalID).NotTo(BeEmpty())
	g.Expect(r.DecisionID).To(Equal(r.ApprovalID), "the approval id is the id of the decision's Chron row")
	ap := &claiimv1.ActionApproval{}
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: r.ApprovalID}, ap)
	}).WithTimeout(20*time.Second).Should(Succeed(), "the manager materializes the request")
	return r.ApprovalID, ap
}

func agentClient(i int) *gateclient.Client { return gateclient.New(gates[i]+"/v", agentToken, svID) }

// waitApproved waits until both replicas' caches hold the approval as
// approved, so the race below is between the two ALLOWs, not the caches.
func waitApproved(t *testing.T, id string) {
	t.Helper()
	for i := range gates {
		st, err := agentClient(i).WaitForApproval(ctx, id, 20*time.Second)
		if err != nil || st.State != api.ApprovalApproved {
			t.Fatalf("gate %d: approval %s: %+v, %v", i, id, st, err)
		}
	}
}

func TestApprovedCallIsAllowedOnceAcrossReplicas(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	call := map[string]any{"service": "checkout", "replicas": 50.0}
	id, ap := requested(t, call)

	// The object is the exact call, as the manager signed it.
	g.Expect(ap.Spec.Agent).To(Equal(agentName))
	g.Expect(ap.Spec.Action).To(Equal("deploy:staging"))
	g.Expect(ap.Spec.ContextDigest).To(Equal(decide.ContextDigest(call)))
	g.Expect(ap.Spec.SkillVersionID).To(Equal(svID))
	g.Expect(ap.Spec.ApprovalsRequired).To(BeEquivalentTo(1))
	g.Expect(ap.Spec.Policy + "/" + ap.Spec.Rule).To(Equal("big-deploys/approve-big"))
	g.Expect(ap.Spec.AgentServiceAccount).To(Equal(agentSA))
	g.Expect(ap.Spec.Requester).To(HavePrefix("token:"))
	g.Expect(ap.Spec.ExpiresAt.Sub(ap.Spec.RequestedAt.Time)).To(Equal(10 * time.Minute))

	// Not yet approved: the retry waits, and so does the client.
	_, r := ask(1, "deploy:staging", call, id)
	g.Expect(r.Reason).To(Equal(api.ReasonApprovalPending), r.Message)
	_, err := agentClient(0).WaitForApproval(ctx, id, time.Second)
	var d *gateclient.Denied
	g.Expect(errors.As(err, &d)).To(BeTrue())
	g.Expect(d.Reason).To(Equal(api.ReasonApprovalPending))

	// Neither the agent's own identity nor someone without the verb.
	err = decideAs(agentSA, id, claiimv1.AnnotationApprove, "me")
	g.Expect(err).To(MatchError(ContainSubstring("never approves its own calls")))
	err = decideAs(nobodyUser, id, claiimv1.AnnotationApprove, "sure")
	g.Expect(err).To(MatchError(ContainSubstring("needs the RBAC verb 'approve' on actionapprovals")))

	// A person with the verb: approved, stamped and signed.
	g.Expect(decideAs(peerUser, id, claiimv1.AnnotationApprove, "ship it")).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: id}, ap)).To(Succeed())
	g.Expect(ap.Approvers()).To(Equal([]string{peerUser}))
	g.Expect(ap.Annotations).NotTo(HaveKey(claiimv1.AnnotationApprove), "the request to approve is consumed")
	g.Expect(ap.Annotations[claiimv1.AnnotationApprovalAttestation]).NotTo(BeEmpty())
	waitApproved(t, id)

	// For that call only.
	_, r = ask(0, "deploy:staging", map[string]any{"service": "checkout", "replicas": 90.0}, id)
	g.Expect(r.Reason).To(Equal(api.ReasonApprovalMismatch), r.Message)

	// The retry sent to both replicas at once: one ALLOW, one APPROVAL_USED.
	type answer struct {
		status int
		r      api.ValidateResponse
	}
	var answers [2]answer
	var wg sync.WaitGroup
	for i := range gates {
		wg.Go(func() { answers[i].status, answers[i].r = ask(i, "deploy:staging", call, id) })
	}
	wg.Wait()
	got := map[string]int{}
	for _, a := range answers {
		got[a.r.Outcome+" "+a.r.Reason]++
		g.Expect(a.r.ApprovalID).To(Equal(id))
		if a.r.Outcome == api.Allow {
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.r.Message).To(ContainSubstring("by " + peerUser))
		} else {
			g.Expect(a.status).To(Equal(http.StatusForbidden))
		}
	}
	g.Expect(got).To(Equal(map[string]int{"ALLOW OWN_AIORG": 1, "DENY APPROVAL_USED": 1}), "%+v", answers)
	_, r = ask(1, "deploy:staging", call, id)
	g.Expect(r.Reason).To(Equal(api.ReasonApprovalUsed))
	st, err := agentClient(0).WaitForApproval(ctx, id, 20*time.Second)
	g.Expect(errors.As(err, &d)).To(BeTrue())
	g.Expect(d.Reason).To(Equal(api.ReasonApprovalUsed))
	g.Expect(st.UsedBy).NotTo(BeEmpty())

	// Every step is a Chron row linked by the approval id.
	g.Eventually(func(g Gomega) {
		g.Expect(steps(id)).To(ContainElements("decision DENY APPROVAL_REQUIRED", "approval.requested DENY APPROVAL_REQUIRED",
			"approval.refused DENY AGENT_APPROVAL", "approval.approved ALLOW APPROVAL_APPROVED",
			"decision DENY APPROVAL_PENDING", "decision DENY APPROVAL_MISMATCH", "decision ALLOW OWN_AIORG", "decision DENY APPROVAL_USED"))
	}).Should(Succeed())
	var uses int
	g.Expect(pool.QueryRow(ctx, "SELECT count(*) FROM chron_approval_uses WHERE approval_id = $1", id).Scan(&uses)).To(Succeed())
	g.Expect(uses).To(Equal(1))
}

// steps lists "kind outcome reason" of the Chron rows of an approval: its
// decision (id) and every row naming it (request_id, or the admission
// rows' context).
func steps(id string) []string {
	rows, err := pool.Query(ctx, `SELECT kind || ' ' || outcome || ' ' || reason FROM chron_records
		WHERE id = $1 OR request_id = $1 OR context->>'approval_id' = $1 OR context->>'name' = $1`, id)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func TestTwoApproversNeedTwoPeople(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	call := map[string]any{"service": "search", "replicas": 500.0}
	id, ap := requested(t, call)
	g.Expect(ap.Spec.ApprovalsRequired).To(BeEquivalentTo(2), "the stricter of the matching rules")

	// The anchor alone is not enough, and counts once.
	g.Expect(decideAs(adminUser, id, claiimv1.AnnotationApprove, "mine")).To(Succeed())
	err := decideAs(adminUser, id, claiimv1.AnnotationApprove, "again")
	g.Expect(err).To(MatchError(ContainSubstring("needs 2 distinct people")))
	g.Eventually(func() string {
		_, r := ask(0, "deploy:staging", call, id)
		return r.Message
	}).Should(ContainSubstring("1 of 2 approvals"))

	g.Expect(decideAs(opsUser, id, claiimv1.AnnotationApprove, "second pair of eyes")).To(Succeed())
	waitApproved(t, id)
	res, err := agentClient(1).Validate(ctx, "deploy:staging", call, gateclient.WithApprovalID(id))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Message).To(ContainSubstring(adminUser + ", " + opsUser))
}

func TestDeniedApproval(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	call := map[string]any{"service": "billing", "replicas": 40.0}
	// The Go client carries the approval id of a held call.
	_, err := agentClient(0).Validate(ctx, "deploy:staging", call)
	var d *gateclient.Denied
	g.Expect(errors.As(err, &d)).To(BeTrue())
	g.Expect(d.Reason).To(Equal(api.ReasonApprovalRequired))
	id := d.ApprovalID
	g.Expect(id).NotTo(BeEmpty())
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: id}, &claiimv1.ActionApproval{})
	}).Should(Succeed())

	g.Expect(decideAs(peerUser, id, claiimv1.AnnotationDeny, "not during the billing freeze")).To(Succeed())
	st, err := agentClient(1).WaitForApproval(ctx, id, 20*time.Second)
	g.Expect(errors.As(err, &d)).To(BeTrue())
	g.Expect(d.Reason).To(Equal(api.ReasonApprovalDenied))
	g.Expect(st.DeniedBy).To(Equal(peerUser))
	g.Eventually(func() string { // the other replica's cache catches up
		_, r := ask(0, "deploy:staging", call, id)
		return r.Reason + ": " + r.Message
	}).Should(And(HavePrefix(api.ReasonApprovalDenied), ContainSubstring("billing freeze")))

	// A denial is final.
	err = decideAs(opsUser, id, claiimv1.AnnotationApprove, "overrule")
	g.Expect(err).To(MatchError(ContainSubstring("already Denied")))
}

// TestOnlyTheManagerMakesApprovals: an ActionApproval someone else wrote
// could name any call; admission admits only the manager's signed ones.
func TestOnlyTheManagerMakesApprovals(t *testing.T) {
	seed(t)
	forged := &claiimv1.ActionApproval{ObjectMeta: metav1.ObjectMeta{Name: "forged", Namespace: "default"},
		Spec: claiimv1.ActionApprovalSpec{Agent: agentName, AgentUID: "x", Action: "deploy:staging", ContextDigest: "sha256:" + strings.Repeat("0", 64),
			SkillVersionID: svID, ApprovalsRequired: 1, RequestedAt: metav1.Now(), ExpiresAt: metav1.NewTime(time.Now().Add(time.Hour))}}
	// RBAC gives people no create; even a cluster-admin's is refused.
	g := NewWithT(t)
	g.Expect(env.As(adminUser).Create(ctx, forged.DeepCopy())).To(MatchError(ContainSubstring("forbidden")))
	g.Expect(env.Client.Create(ctx, forged)).To(MatchError(ContainSubstring("made by the CLAIIM manager")))
}

// writeRequest writes an approval.requested row as a gate would, for the
// seed's agent or for one in namespace ns.
func writeRequest(t *testing.T, id, ns string, expires time.Time) {
	t.Helper()
	w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/" + id[len(id)-4:]})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	a := &claiimv1.Agent{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: agentName}, a); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := w.Write(ctx, &chron.Record{Kind: chron.KindApprovalRequested, RequestID: id, AgentName: agentName, AgentNamespace: ns,
		AgentUID: string(a.UID), Action: "deploy:staging", Outcome: chron.OutcomeDeny, Reason: api.ReasonApprovalRequired, SkillVersionID: svID,
		Context: map[string]any{"approval_id": id, "context_digest": decide.ContextDigest(nil), "approvals_required": 1,
			"requested_at": now.Format(time.RFC3339), "expires_at": expires.UTC().Format(time.RFC3339)}}); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredApprovalsAreDeleted: once past its expiry and the retention
// (a second in this suite), the leader deletes an ActionApproval.
func TestExpiredApprovalsAreDeleted(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	const id = "0193a1b2-0000-7000-8000-0000000fe1e0"
	writeRequest(t, id, "default", time.Now().Add(3*time.Second))
	key := client.ObjectKey{Namespace: "default", Name: id}
	g.Eventually(func() error { return env.Client.Get(ctx, key, &claiimv1.ActionApproval{}) }).Should(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, key, &claiimv1.ActionApproval{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
}

// TestAnUnmakeableRequestHoldsUpNothing: a request the manager can never
// materialize (its agent's namespace is gone) is skipped, and the ones
// after it are made.
func TestAnUnmakeableRequestHoldsUpNothing(t *testing.T) {
	seed(t)
	writeRequest(t, "0193a1b2-0000-7000-8000-00000000dead", "no-such-namespace", time.Now().Add(time.Hour))
	requested(t, map[string]any{"service": "after-the-gone-one", "replicas": 12.0})
}

// TestAuthZENSeesAHeldCallAsDenied: an AuthZEN evaluation of a held call
// is decision false with the reason code, and says where approvals go.
func TestAuthZENSeesAHeldCallAsDenied(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	body, _ := json.Marshal(api.AuthZENEvaluation{
		Subject: &api.AuthZENEntity{Type: api.AuthZENSubjectType, ID: "default/" + agentName, Properties: map[string]any{api.AuthZENSkillVersionProperty: svID}},
		Action:  &api.AuthZENAction{Name: "deploy:staging"}, Resource: &api.AuthZENEntity{Type: "service", ID: "checkout"},
		Context: map[string]any{"replicas": 70.0}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gates[1]+api.AuthZENEvaluationPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var d api.AuthZENDecision
	g.Expect(json.NewDecoder(resp.Body).Decode(&d)).To(Succeed())
	g.Expect(d.Decision).To(BeFalse())
	g.Expect(d.Context.ReasonCode).To(Equal(api.ReasonApprovalRequired))
	g.Expect(d.Context.Reason["en"]).To(ContainSubstring("POST /v/validate"))
}
