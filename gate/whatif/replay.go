package whatif

import (
	"context"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Request is one recorded agent request: what the gate was asked, and
// what it answered then (a Chron decision row).
type Request struct {
	ID             string
	Time           time.Time
	AgentNamespace string
	AgentName      string
	AgentUID       string
	Action         string
	// Context as Chron stored it: secret-looking keys masked, deep or
	// large parts truncated (gate/chron mask.go).
	Context map[string]any
	// SkillVersionID is the agent's pinned version as recorded, which is
	// the version it presented unless the row says the two differed.
	SkillVersionID string
	Outcome        string
	Reason         string
}

// Markers Chron leaves in a stored context (gate/chron mask.go). They are
// repeated here, not imported, so the replay core links no database
// driver; load_test.go checks they stay equal.
const (
	maskedMarker    = "***"
	truncatedMarker = "…truncated"
)

// Why a request cannot be replayed faithfully.
const (
	WhyMasked      = "its context was masked or truncated when recorded, and a policy condition may read it"
	WhyAgentGone   = "its agent no longer exists (or was re-created)"
	WhyTokenGone   = "its agent can no longer authenticate (token revoked, untrusted or shared)"
	WhyVersionLost = "the skill version it presented was not recorded (it differed from the pinned one), and the answer depends on it"
)

// Options bound a replay.
type Options struct {
	// Now is the time both worlds decide at (grants and expiries).
	Now time.Time
	// Stopped says why reading stopped before the window's end ("the
	// cap of 10,000 rows", "the time budget"); "" when everything was
	// read. The report then says it sampled.
	Stopped string
	// Window describes where the requests came from, for the report
	// ("the last 24h").
	Window string
}

// Replay answers every request twice, in the current world and in the
// world with the change, and reports the differences. It stops when ctx
// ends and reports what it replayed as a sample.
func Replay(ctx context.Context, w World, c Change, reqs []Request, o Options) (*Report, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	eph := attest.NewSigner(attest.NewKey())
	next, err := w.with(c, o.Now, eph)
	if err != nil {
		return nil, err
	}
	keys := w.verifier()
	before := decide.Build(w.inputs(keys))
	after := decide.Build(next.inputs(either{eph, keys}))
	conditional := hasConditions(w.Policies) || hasConditions(next.Policies)

	r := newReport(c.Describe(w), len(reqs), o)
	if w.Keys == nil {
		r.Notes = append(r.Notes, "the manager's attestation keys were not available: signed statuses and admission stamps were taken as they are")
	}
	for i := range reqs {
		if ctx.Err() != nil {
			break
		}
		q := &reqs[i]
		r.Replayed++
		if q.AgentName == "" || q.Reason == api.ReasonBadRequest || decide.ValidateAction(q.Action) != nil {
			r.Skipped++
			continue
		}
		if conditional && masked(q.Context) {
			r.undecided(q, WhyMasked)
			continue
		}
		a, why := resolve(before, q)
		if why != "" {
			r.undecided(q, why)
			continue
		}
		b, _ := resolve(after, q)
		presented, known := q.SkillVersionID, q.SkillVersionID != "" && q.Reason != decide.ReasonSkillVersionMismatch
		if !known {
			presented = "whatif:unrecorded"
		}
		now := decide.Decide(before, decide.Request{Agent: a, Action: q.Action, Context: q.Context, SkillVersionID: presented, Now: o.Now})
		then := decide.Decide(after, decide.Request{Agent: b, Action: q.Action, Context: q.Context, SkillVersionID: presented, Now: o.Now})
		if !known && (!earlyReason(now.Reason) || !earlyReason(then.Reason)) {
			r.undecided(q, WhyVersionLost)
			continue
		}
		r.compare(q, now, then)
	}
	r.finish()
	return r, nil
}

// resolve finds the request's agent as the gate would authenticate it
// now: the same agent (UID), holding a token that still authenticates it
// or bound to a ServiceAccount.
func resolve(s *decide.Snapshot, q *Request) (*decide.Agent, string) {
	a, ok := s.Agent(q.AgentNamespace, q.AgentName)
	if !ok || (q.AgentUID != "" && a.UID != q.AgentUID) {
		return nil, WhyAgentGone
	}
	if t, ok := s.AgentByToken(a.TokenID); a.TokenID != "" && ok && t == a {
		return a, ""
	}
	if a.ServiceAccount != "" && a.Phase != claiimv1.AgentDecommissioned {
		return a, ""
	}
	return nil, WhyTokenGone
}

// earlyReason: decided before the skill version is compared (decide's
// steps 1 and 2), so the presented version does not matter.
func earlyReason(r string) bool {
	return r == decide.ReasonUnauthenticated || r == decide.ReasonAgentInactive || r == decide.ReasonNotAdmitted
}

func hasConditions(ps []claiimv1.Policy) bool {
	for i := range ps {
		for _, r := range ps[i].Spec.Rules {
			if strings.TrimSpace(r.Condition) != "" {
				return true
			}
		}
	}
	return false
}

// masked reports whether Chron's bounding replaced any part of a stored
// context.
func masked(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == truncatedMarker || masked(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if masked(e) {
				return true
			}
		}
	case string:
		return x == maskedMarker || x == truncatedMarker
	}
	return false
}
