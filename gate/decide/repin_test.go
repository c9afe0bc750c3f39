package decide

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// repinned is the seed with the bot re-pinned from deploy-bot v1 to v2
// (which no longer allows deploy:staging but allows deploy:canary); the
// manager recorded v1 as the previous version until `until`.
func repinned(until time.Time) (Inputs, string, string) {
	in := seedInputs()
	sk := &in.Skills[0]
	sk.Spec.Versions = append(sk.Spec.Versions, claiimv1.SkillVersion{Version: 2, AgentEmail: "deploy-bot@yourcompany.com",
		AllowedActions: []claiimv1.ActionPattern{"deploy:canary"}})
	v1, v2 := &sk.Spec.Versions[0], &sk.Spec.Versions[1]
	id1, id2 := claiimv1.SkillVersionID(sk.Name, 1, v1.Digest()), claiimv1.SkillVersionID(sk.Name, 2, v2.Digest())
	a := &in.Agents[0]
	a.Spec.SkillRef.Version = 2
	a.Status.PreviousSkillVersion = &claiimv1.PreviousSkillVersion{Name: sk.Name, Version: 1, ID: id1, Digest: v1.Digest(), Until: metav1.NewTime(until)}
	return in, id1, id2
}

func TestRepinGraceWindow(t *testing.T) {
	until := now.Add(10 * time.Minute)
	in, v1, v2 := repinned(until)
	presenting := func(id string, at time.Time) func(*Request) {
		return func(r *Request) { r.SkillVersionID, r.Now = id, at }
	}

	d := decide(t, in, "bot", "deploy:staging", nil, presenting(v1, now))
	if d.Outcome != Allow || d.Reason != ReasonOwnAIOrg || !d.Previous || d.SkillVersion.ID != v1 || d.PinnedVersionID != v2 {
		t.Fatalf("in the window, the previous version decides under its own rules: %s %s previous=%v used=%v pinned=%s (%s)",
			d.Outcome, d.Reason, d.Previous, d.SkillVersion, d.PinnedVersionID, d.Message)
	}
	for _, w := range []string{"previous skill version " + v1, "re-init to use " + v2, until.Format(time.RFC3339)} {
		if !strings.Contains(d.Message, w) {
			t.Errorf("message %q does not say %q", d.Message, w)
		}
	}
	if d := decide(t, in, "bot", "deploy:production", nil, presenting(v1, now)); d.Reason != ReasonPolicyDeny || !d.Previous {
		t.Errorf("a Deny policy still wins under the previous version: %s %s", d.Reason, d.Message)
	}
	if d := decide(t, in, "bot", "deploy:canary", nil, presenting(v2, now)); d.Outcome != Allow || d.Previous || d.PinnedVersionID != v2 {
		t.Errorf("the pinned version works as always: %s %s previous=%v", d.Outcome, d.Reason, d.Previous)
	}

	d = decide(t, in, "bot", "deploy:staging", nil, presenting(v1, until))
	if d.Outcome != Deny || d.Reason != ReasonSkillVersionMismatch || d.Previous || d.PinnedVersionID != v2 {
		t.Fatalf("at the window's end the previous version is refused: %s %s previous=%v pinned=%s", d.Outcome, d.Reason, d.Previous, d.PinnedVersionID)
	}
	for _, w := range []string{"was its previous version", "re-init the agent", v2} {
		if !strings.Contains(d.Message, w) {
			t.Errorf("message %q does not say %q", d.Message, w)
		}
	}
	if d := decide(t, in, "bot", "deploy:staging", nil, presenting(v1, time.Time{})); d.Reason != ReasonSkillVersionMismatch {
		t.Errorf("a request without a time gets no grace: %s", d.Reason)
	}
	if d := decide(t, in, "bot", "deploy:staging", nil, presenting("deploy-bot-v9-00000000", now)); d.Reason != ReasonSkillVersionMismatch {
		t.Errorf("another version than the previous one: %s", d.Reason)
	}
}

func TestRepinGraceNeedsTheManagersSignature(t *testing.T) {
	in, v1, _ := repinned(now.Add(time.Hour))
	in = signed(in)
	// Someone with agents/status writes a longer window after the manager signed.
	in.Agents[0].Status.PreviousSkillVersion.Until = metav1.NewTime(now.Add(48 * time.Hour))
	s := Build(in)
	a, _ := s.Agent("default", "bot")
	if d := Decide(s, Request{Agent: a, Action: "deploy:staging", SkillVersionID: v1, Now: now.Add(2 * time.Hour)}); d.Outcome != Deny || d.Previous {
		t.Fatalf("an unsigned window counts for nothing: %s %s previous=%v", d.Outcome, d.Reason, d.Previous)
	}
	// Signed as the manager does, but the previous version's content has
	// since changed (a skill deleted and re-created): no grace.
	in, v1, _ = repinned(now.Add(time.Hour))
	in.Agents[0].Status.PreviousSkillVersion.ID = strings.TrimSuffix(v1, v1[len(v1)-8:]) + "00000000"
	in.Agents[0].Status.Attestation = testSigner.Sign(attest.Agent(&in.Agents[0]))
	if d := decide(t, in, "bot", "deploy:staging", nil, func(r *Request) { r.SkillVersionID = in.Agents[0].Status.PreviousSkillVersion.ID }); d.Previous {
		t.Error("a previous version that is no longer published as recorded must not be accepted")
	}
}

func TestRepinInitSaysPrevious(t *testing.T) {
	in, v1, v2 := repinned(now.Add(10 * time.Minute))
	s := buildSigned(in)
	a, _ := s.Agent("default", "bot")
	d := Init(s, a, v1, now)
	if d.Outcome != Allow || !strings.Contains(d.Message, "previous skill version") || !strings.Contains(d.Message, "re-init with "+v2) || d.PinnedVersionID != v2 {
		t.Errorf("init with the previous version: %s %q pinned=%s", d.Outcome, d.Message, d.PinnedVersionID)
	}
	// Past its window (before the manager drops it from status), init does
	// not call it accepted: every action with it is a mismatch.
	d = Init(s, a, v1, now.Add(11*time.Minute))
	if strings.Contains(d.Message, "accepted until") || !strings.Contains(d.Message, ReasonSkillVersionMismatch) {
		t.Errorf("init with the previous version past its window: %q", d.Message)
	}
}
