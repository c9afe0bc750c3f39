package whatif

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// manager stands for the manager's key.
var manager = attest.NewSigner(attest.NewKey())

func stampObj(o metav1.Object) {
	ann := maps.Clone(o.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, claiimv1.AnnotationAdmitted)
	o.SetAnnotations(ann)
	v, err := attest.NewStamp(manager, o, o, time.Now())
	if err != nil {
		panic(err)
	}
	ann[claiimv1.AnnotationAdmitted] = v
}

// world: org payments, skill payer v1 (payments:send, payments:refund),
// agent team/bot Active on it, and a policy allowing reports:read.
func world() World {
	org := claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "payments", UID: "o1", Generation: 1}}
	skill := claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "payer", UID: "s1", Generation: 1},
		Spec: claiimv1.SkillSpec{Org: "payments", Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "bot@x.io",
			AllowedActions: []claiimv1.ActionPattern{"payments:send", "payments:refund"}}}}}
	pol := claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "reports", UID: "p1", Generation: 1},
		Spec: claiimv1.PolicySpec{Org: "payments", Rules: []claiimv1.PolicyRule{{Name: "read", Actions: []claiimv1.ActionPattern{"reports:read"}, Effect: claiimv1.PolicyEffectAllow}}}}
	agent := claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "bot", Namespace: "team", UID: "a1", Generation: 1,
		Annotations: map[string]string{claiimv1.AnnotationAnchorAccepted: "alice@x.io"}},
		Spec:   claiimv1.AgentSpec{Org: "payments", AccountabilityAnchor: "alice@x.io", SkillRef: claiimv1.SkillRef{Name: "payer", Version: 1}},
		Status: claiimv1.AgentStatus{Phase: claiimv1.AgentActive, ObservedGeneration: 1, Token: &claiimv1.AgentToken{ID: "t1", Hash: "sha256:00"}}}
	for _, o := range []metav1.Object{&org, &skill, &pol, &agent} {
		stampObj(o)
	}
	agent.Status.Attestation = manager.Sign(attest.Agent(&agent))
	return World{Orgs: []claiimv1.AIOrg{org}, Skills: []claiimv1.Skill{skill}, Policies: []claiimv1.Policy{pol},
		Agents: []claiimv1.Agent{agent}, Grants: nil, Keys: manager.Public()}
}

func recorded(w World) []Request {
	snap := decide.Build(w.inputs(w.Keys))
	a, _ := snap.Agent("team", "bot")
	sv, _ := snap.PinnedVersion(a)
	q := func(id, action string, ctx map[string]any, outcome, reason string) Request {
		return Request{ID: id, AgentNamespace: "team", AgentName: "bot", AgentUID: "a1", Action: action, Context: ctx,
			SkillVersionID: sv.ID, Outcome: outcome, Reason: reason}
	}
	return []Request{
		q("s1", "payments:send", map[string]any{"amount": 10.0}, "ALLOW", "OWN_AIORG"),
		q("s2", "payments:send", map[string]any{"amount": 5000.0}, "ALLOW", "OWN_AIORG"),
		q("s3", "payments:send", map[string]any{"amount": 20.0, "api_key": chron.Masked}, "ALLOW", "OWN_AIORG"),
		q("r1", "payments:refund", nil, "ALLOW", "OWN_AIORG"),
		{ID: "g1", AgentNamespace: "team", AgentName: "gone", AgentUID: "a9", Action: "payments:send", Outcome: "ALLOW", Reason: "OWN_AIORG"},
		{ID: "m1", AgentNamespace: "team", AgentName: "bot", AgentUID: "a1", Action: "payments:send", SkillVersionID: sv.ID,
			Outcome: "DENY", Reason: decide.ReasonSkillVersionMismatch},
		{ID: "n1", Action: "", Outcome: "DENY", Reason: "NOT_READY"},
		{ID: "b1", AgentNamespace: "team", AgentName: "bot", AgentUID: "a1", Action: "payments:send", Outcome: "DENY", Reason: "BAD_REQUEST"},
	}
}

func denyPolicy(cond string) *claiimv1.Policy {
	return &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-big-payments"},
		Spec: claiimv1.PolicySpec{Org: "payments", Rules: []claiimv1.PolicyRule{{Name: "send", Actions: []claiimv1.ActionPattern{"payments:send"},
			Effect: claiimv1.PolicyEffectDeny, Condition: cond}}}}
}

func TestMarkersMatchChron(t *testing.T) {
	if maskedMarker != chron.Masked || truncatedMarker != chron.Truncated {
		t.Fatalf("markers drifted from gate/chron: %q %q", chron.Masked, chron.Truncated)
	}
}

func TestReplayPolicyFlipsKnownRequests(t *testing.T) {
	w := world()
	r, err := Replay(context.Background(), w, Change{{Object: denyPolicy("")}}, recorded(w), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 3 || len(r.Flips) != 1 {
		t.Fatalf("want 3 changed requests in one group, got %d in %+v", r.Changed, r.Flips)
	}
	f := r.Flips[0]
	if f.Agent != "team/bot" || f.Action != "payments:send" || f.From != (Answer{"ALLOW", "OWN_AIORG"}) || f.To != (Answer{"DENY", "POLICY_DENY"}) {
		t.Errorf("flip = %+v", f)
	}
	// refund unchanged; the mismatch row decided before the version check in
	// neither world, so it cannot be decided; the gone agent neither.
	if r.Unchanged != 1 || r.Undecidable != 2 || r.Skipped != 2 {
		t.Errorf("unchanged %d undecidable %d skipped %d; report %+v", r.Unchanged, r.Undecidable, r.Skipped, r)
	}
	if r.Change[0] != "create Policy/no-big-payments" || r.Sampled != "" {
		t.Errorf("change %v sampled %q", r.Change, r.Sampled)
	}
}

func TestReplayConditionMakesMaskedContextUndecidable(t *testing.T) {
	w := world()
	r, err := Replay(context.Background(), w, Change{{Object: denyPolicy("context.amount > 1000.0")}}, recorded(w), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 1 || r.Flips[0].Examples[0] != "s2" {
		t.Fatalf("want only s2 to flip, got %+v", r.Flips)
	}
	found := false
	for _, u := range r.Undecided {
		found = found || (u.Why == WhyMasked && u.Count == 1 && u.Examples[0] == "s3")
	}
	if !found {
		t.Errorf("masked s3 not undecidable: %+v", r.Undecided)
	}
}

func TestReplayNoOpChangeReportsNothing(t *testing.T) {
	w := world()
	same := w.Policies[0].DeepCopy()
	r, err := Replay(context.Background(), w, Change{{Object: same}}, recorded(w), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 0 || len(r.Flips) != 0 || r.Change[0] != "update Policy/reports" {
		t.Fatalf("a no-op changed %d: %+v", r.Changed, r.Flips)
	}
	// Deleting the only policy touches nothing these requests use either.
	r, err = Replay(context.Background(), w, Change{{Object: same, Delete: true}}, recorded(w), Options{})
	if err != nil || r.Changed != 0 {
		t.Fatalf("delete: %v %+v", err, r)
	}
}

func TestReplayAgentChangeDerivesStatus(t *testing.T) {
	w := world()
	suspended := w.Agents[0].DeepCopy()
	suspended.Spec.Lifecycle = claiimv1.LifecycleSuspended
	suspended.Status = claiimv1.AgentStatus{} // ignored: the manager's
	r, err := Replay(context.Background(), w, Change{{Object: suspended, Apply: true}}, recorded(w), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 4 {
		t.Fatalf("suspending flips all 4 decidable requests, got %d: %+v", r.Changed, r.Flips)
	}
	for _, f := range r.Flips {
		if f.To != (Answer{"DENY", decide.ReasonAgentInactive}) {
			t.Errorf("flip to %v", f.To)
		}
	}
	next, err := w.with(Change{{Object: suspended, Apply: true}}, time.Now(), attest.NewSigner(attest.NewKey()))
	if err != nil {
		t.Fatal(err)
	}
	if st := next.Agents[0].Status; st.Phase != claiimv1.AgentSuspended || st.ObservedGeneration != 2 ||
		st.SkillVersionID != claiimv1.SkillVersionID("payer", 1, w.Skills[0].Spec.Versions[0].Digest()) || st.Token == nil {
		t.Errorf("derived status %+v", st)
	}
	// A rename changes the spec, not the answers: the status the manager
	// would sign for the new generation counts.
	renamed := w.Agents[0].DeepCopy()
	renamed.Spec.DisplayName = "Payer"
	if r, err = Replay(context.Background(), w, Change{{Object: renamed}}, recorded(w), Options{}); err != nil || r.Changed != 0 || r.Unchanged != 4 {
		t.Fatalf("rename: %v %+v", err, r)
	}
	// A re-pin to a version that is not published: the agent goes Pending.
	repin := w.Agents[0].DeepCopy()
	repin.Spec.SkillRef.Version = 2
	r, err = Replay(context.Background(), w, Change{{Object: repin}}, recorded(w), Options{})
	if err != nil || r.Changed != 4 {
		t.Fatalf("re-pin: %v %+v", err, r)
	}
}

func TestReplayBudgetSamples(t *testing.T) {
	w := world()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := Replay(ctx, w, Change{{Object: denyPolicy("")}}, recorded(w), Options{Stopped: "the cap of 8 rows"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Replayed != 0 || r.Sampled != "sampled 0 of more than 8 requests (the newest): the time budget ran out" {
		t.Fatalf("sampled %q after %d", r.Sampled, r.Replayed)
	}
	if ws := r.Warnings(5); len(ws) != 1 || ws[0] != "what-if: "+r.Headline() {
		t.Errorf("warnings %q", ws)
	}
}

func TestScope(t *testing.T) {
	w := world()
	if got := Scope(w, Change{{Object: denyPolicy("")}}); len(got) != 1 || got[0] != "payments" {
		t.Errorf("policy of payments: %v", got)
	}
	other := denyPolicy("")
	other.Spec.Org = "hr"
	if got := Scope(w, Change{{Object: other}}); got == nil || len(got) != 0 {
		t.Errorf("policy of an org without agents: %v", got)
	}
	other.Spec.Org = ""
	if got := Scope(w, Change{{Object: other}}); got != nil {
		t.Errorf("unscoped policy: %v", got)
	}
	// A deletion names no spec: the stored object's org counts.
	stub := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "reports"}}
	if got := Scope(w, Change{{Object: stub, Delete: true}}); len(got) != 1 || got[0] != "payments" {
		t.Errorf("deleting a policy of payments: %v", got)
	}
	gone := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "bot", Namespace: "team"}}
	if got := Scope(w, Change{{Object: gone, Delete: true}}); len(got) != 1 || got[0] != "payments" {
		t.Errorf("deleting an agent of payments: %v", got)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 9000: "9,000", 1234567: "1,234,567"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q", n, got)
		}
	}
}

func TestSummaryIsBoundedAndValid(t *testing.T) {
	w := world()
	r, err := Replay(context.Background(), w, Change{{Object: denyPolicy("")}}, recorded(w), Options{Window: "the last 24h"})
	if err != nil {
		t.Fatal(err)
	}
	full := r.Summary(4096)
	if !strings.Contains(full, "3 requests of agent team/bot would flip ALLOW→DENY (action payments:send, OWN_AIORG → POLICY_DENY)") {
		t.Fatalf("summary %q", full)
	}
	for n := 20; n < len(full); n++ {
		if s := r.Summary(n); len(s) > n || !utf8.ValidString(s) {
			t.Fatalf("Summary(%d) = %q (%d bytes)", n, s, len(s))
		}
	}
}

// Without the manager's keys (a reader who may not read them), present
// attestations are taken as they are, and the report says so.
func TestReplayWithoutKeys(t *testing.T) {
	w := world()
	reqs := recorded(w)
	w.Keys = nil
	r, err := Replay(context.Background(), w, Change{{Object: denyPolicy("")}}, reqs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 3 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "attestation keys were not available") {
		t.Fatalf("changed %d, notes %q", r.Changed, r.Notes)
	}
	// A status nobody signed still counts for nothing.
	w.Agents[0].Status.Attestation = ""
	if r, err = Replay(context.Background(), w, Change{{Object: denyPolicy("")}}, reqs, Options{}); err != nil || r.Changed != 0 || r.Undecidable != 6 {
		t.Fatalf("unsigned: %v changed %d undecidable %d", err, r.Changed, r.Undecidable)
	}
}
