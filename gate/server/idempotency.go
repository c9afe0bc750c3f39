package server

// Idempotency-Key on POST /v/validate. A client that cannot tell whether
// its request reached the gate (a connection closed by a rollout, a reply
// lost) retries with the same key; every try is then one decision: its
// Chron ID is derived from the agent and the key, so a retry on any
// replica writes to the same ID, the writer stores nothing the second time
// and hands back the row stored first, and the gate answers with that row.
// The first decision stands, even if the world changed in between (the
// agent suspended, a policy added): the action was decided once, when it
// was asked, and the agent acts on that answer at most once.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// KeyWindow is how long the gate repeats a keyed decision. A client's
// retries end within its own timeout (seconds); a key presented again
// later is not a retry, and the decision it named may no longer hold (the
// agent suspended since), so the gate refuses it rather than repeat an
// old ALLOW.
const KeyWindow = 5 * time.Minute

// keyNamespace seeds the keyed decision IDs. It is part of the ID scheme:
// changing it would make a retry across an upgrade a second decision.
var keyNamespace = uuid.MustParse("5b0f4f57-6c1e-4a55-9a9e-0c1a1a1e4b7d")

// useKey reads the request's Idempotency-Key and, when there is one, gives
// the decision the ID derived from it. A malformed key is a bad request
// that names the header.
func useKey(r *http.Request, rec *chron.Record, agent *decide.Agent) (field string, err error) {
	keys := r.Header.Values(api.IdempotencyKeyHeader)
	if len(keys) == 0 {
		return "", nil
	}
	key := keys[0]
	if len(keys) > 1 || key == "" || len(key) > api.MaxIdempotencyKeyLen ||
		strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return api.IdempotencyKeyHeader, fmt.Errorf("send one %s header of 1 to %d printable ASCII characters, new for each request (a random UUID will do)",
			api.IdempotencyKeyHeader, api.MaxIdempotencyKeyLen)
	}
	id := keyedID(agent.UID, key)
	if rec.RequestID == rec.ID { // no X-Request-Id: it follows the ID
		rec.RequestID = id
	}
	rec.ID = id
	return "", nil
}

// keyedID derives a decision ID from the agent's UID and its key: a
// version 8 UUID from SHA-256, so two agents' keys never name one
// decision. When the key is itself a version 7 UUID (as both clients
// send), the ID keeps its 48-bit timestamp, so keyed IDs still arrive in
// time order at the right edge of Chron's primary-key index (see
// chron.NewID).
func keyedID(agentUID, key string) string {
	h := sha256.New()
	h.Write(keyNamespace[:])
	h.Write([]byte(agentUID))
	h.Write([]byte{0}) // a UID holds no NUL: "ab"+"c" and "a"+"bc" differ
	h.Write([]byte(key))
	var id uuid.UUID
	copy(id[:], h.Sum(nil))
	if k, err := uuid.Parse(key); err == nil && k.Version() == 7 {
		copy(id[:6], k[:6])
	}
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id.String()
}

// keyRefused is a try whose Idempotency-Key cannot be answered with the
// decision stored under it.
type keyRefused struct{ reason, message string }

func (e *keyRefused) Error() string { return e.reason + ": " + e.message }

// stored makes resp the answer Chron holds under rec.ID. For a fresh
// decision that is rec itself. For a retry it is the row stored by the
// first try, which stands, unless it decided a different request or is
// older than KeyWindow: then an error refuses the key.
func (s *Server) stored(resp *api.ValidateResponse, rec *chron.Record, row chron.Row) error {
	if row.ID != rec.ID {
		return nil
	}
	// chron.Writer will refuse an ID stored with other content itself
	// (chron.ErrConflict, see refusedKey); this check holds until then for
	// what the row shows. The context is compared there, after masking.
	// Only what the agent asked counts: the skill version, org and anchor
	// a row records come from the snapshot, and a retry decided on a newer
	// one may legitimately differ (a suspended agent's DENY names no skill
	// version).
	if row.Kind != rec.Kind || row.AgentUID != rec.AgentUID || row.Action != rec.Action {
		return &keyRefused{api.ReasonIdempotencyConflict, fmt.Sprintf(
			"the %s already decided another request (decision %s); send a new key with each request", api.IdempotencyKeyHeader, row.ID)}
	}
	if s.Now().Sub(row.Time) > KeyWindow {
		return &keyRefused{api.ReasonIdempotencyExpired, fmt.Sprintf(
			"the %s decided this request at %s (decision %s); the gate repeats a decision for %s only: ask again with a new key",
			api.IdempotencyKeyHeader, row.Time.UTC().Format(time.RFC3339), row.ID, KeyWindow)}
	}
	if row.Outcome == rec.Outcome && row.Reason == rec.Reason && row.Message == rec.Message &&
		slices.Equal(row.Policies, rec.Policies) && slices.Equal(row.SkillRules, rec.SkillRules) {
		return nil
	}
	resp.Outcome, resp.Reason, resp.Message, resp.Anchor = row.Outcome, row.Reason, row.Message, row.Anchor
	resp.Policies, resp.Audit, resp.SkillRules = nil, nil, row.SkillRules
	for _, p := range row.Policies {
		m := api.PolicyMatch{Name: p.Name, Version: p.Version, Rule: p.Rule, Effect: p.Effect}
		if p.Enforcement != "" {
			resp.Audit = append(resp.Audit, m)
		} else {
			resp.Policies = append(resp.Policies, m)
		}
	}
	resp.Revision = "" // the first try's snapshot is not recorded
	return nil
}

// refusedKey reports whether err refuses the Idempotency-Key of r.
func refusedKey(r *http.Request, err error) (*keyRefused, bool) {
	var kr *keyRefused
	if errors.As(err, &kr) {
		return kr, true
	}
	// Only a keyed request can meet a conflict honestly; for a random ID it
	// stays CHRON_UNAVAILABLE, a forged row to look into.
	if errors.Is(err, chron.ErrConflict) && r.Header.Get(api.IdempotencyKeyHeader) != "" {
		return &keyRefused{api.ReasonIdempotencyConflict, "the " + api.IdempotencyKeyHeader +
			" already decided another request; send a new key with each request"}, true
	}
	return nil, false
}

// refuseKey answers a try whose key cannot be honoured with a DENY of its
// own, recorded under a fresh ID (the key's ID holds the first decision).
func (s *Server) refuseKey(ctx context.Context, rec *chron.Record, resp *api.ValidateResponse, kr *keyRefused) int {
	fresh := *rec
	fresh.ID, fresh.Policies, fresh.SkillRules = chron.NewID(), nil, nil
	*resp = api.ValidateResponse{Outcome: api.Deny, Reason: kr.reason, Message: kr.message,
		Agent: resp.Agent, Anchor: resp.Anchor, SkillVersionID: resp.SkillVersionID, Revision: resp.Revision, PinnedSkillVersionID: resp.PinnedSkillVersionID}
	if err := s.record(ctx, &fresh, resp); err != nil {
		return failedStatus(err)
	}
	return http.StatusConflict
}

// failedStatus is the HTTP status of an answer whose row did not commit.
func failedStatus(err error) int {
	if errors.Is(err, chron.ErrOverloaded) {
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// decisionStatus is the HTTP status of a decision about an authenticated
// agent's action.
func decisionStatus(outcome, reason string) int {
	switch {
	case outcome == api.Allow:
		return http.StatusOK
	case reason == decide.ReasonUnauthenticated:
		return http.StatusUnauthorized
	case reason == api.ReasonBadRequest:
		return http.StatusBadRequest
	case reason == api.ReasonChronUnavailable: // an approval request that could not be recorded
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden
}
