package server

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

func TestKeyedID(t *testing.T) {
	const a, b = "2b1f0c1e-0000-4000-8000-000000000001", "2b1f0c1e-0000-4000-8000-000000000002"
	k7 := uuid.Must(uuid.NewV7()).String()
	id := keyedID(a, k7)
	if keyedID(a, k7) != id {
		t.Fatal("the same agent and key give another ID")
	}
	if keyedID(b, k7) == id || keyedID(a, k7+"x") == id {
		t.Fatal("another agent or another key gives the same ID")
	}
	if keyedID(a+"x", "y") == keyedID(a, "xy") {
		t.Fatal("UID and key run together")
	}
	for _, key := range []string{k7, "not-a-uuid", uuid.NewString()} {
		u := uuid.MustParse(keyedID(a, key))
		if u.Version() != 8 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("keyedID(%q) = %s: version %d, variant %s; want 8, RFC 4122", key, u, u.Version(), u.Variant())
		}
	}
	if id[:13] != k7[:13] {
		t.Fatalf("keyedID(%s) = %s: want the key's timestamp kept", k7, id)
	}
}

func TestUseKey(t *testing.T) {
	agent := &decide.Agent{UID: "2b1f0c1e-0000-4000-8000-000000000001"}
	for _, c := range []struct {
		name string
		keys []string
		bad  bool
	}{
		{name: "no key"},
		{name: "a UUID", keys: []string{uuid.NewString()}},
		{name: "128 printable characters", keys: []string{strings.Repeat("~", 128)}},
		{name: "129 characters", keys: []string{strings.Repeat("k", 129)}, bad: true},
		{name: "empty", keys: []string{""}, bad: true},
		{name: "a space", keys: []string{"a b"}, bad: true},
		{name: "not ASCII", keys: []string{"clé"}, bad: true},
		{name: "a control character", keys: []string{"a\x7f"}, bad: true},
		{name: "two headers", keys: []string{"a", "b"}, bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "/v/validate", nil)
			for _, k := range c.keys {
				r.Header.Add(api.IdempotencyKeyHeader, k)
			}
			rec := &chron.Record{ID: "random", RequestID: "random"}
			field, err := useKey(r, rec, agent)
			switch {
			case c.bad && (err == nil || field != api.IdempotencyKeyHeader):
				t.Fatalf("useKey = %q, %v; want an error naming %s", field, err, api.IdempotencyKeyHeader)
			case c.bad && rec.ID != "random":
				t.Fatalf("a refused key changed the ID to %s", rec.ID)
			case !c.bad && err != nil:
				t.Fatalf("useKey: %v", err)
			case len(c.keys) == 0 && rec.ID != "random":
				t.Fatalf("no key, yet the ID is %s", rec.ID)
			case len(c.keys) == 1 && !c.bad && (rec.ID != keyedID(agent.UID, c.keys[0]) || rec.RequestID != rec.ID):
				t.Fatalf("ID %s, request ID %s; want both keyedID", rec.ID, rec.RequestID)
			}
		})
	}
}

func TestStored(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &Server{Now: func() time.Time { return now }}
	// This try decided DENY AGENT_INACTIVE; the first try's row says ALLOW.
	mine := chron.Record{ID: "k", Kind: chron.KindDecision, AgentUID: "u", Action: "deploy:staging", SkillVersionID: "sv",
		Outcome: api.Deny, Reason: decide.ReasonAgentInactive, Message: "suspended", Time: now}
	first := mine
	first.Outcome, first.Reason, first.Message, first.Time = api.Allow, decide.ReasonOwnAIOrg, "allowed", now.Add(-time.Minute)
	first.SkillRules = []string{"allowed:deploy:staging"}
	answer := func() api.ValidateResponse {
		return api.ValidateResponse{Outcome: mine.Outcome, Reason: mine.Reason, Message: mine.Message, Revision: "r2", DecisionID: "k"}
	}
	with := func(f func(r *chron.Record)) chron.Row { r := first; f(&r); return chron.Row{Record: r} }

	t.Run("its own row: the answer stands", func(t *testing.T) {
		resp := answer()
		if err := s.stored(&resp, &mine, chron.Row{Record: mine}); err != nil || resp.Outcome != api.Deny || resp.Revision != "r2" {
			t.Fatalf("stored = %v, %+v", err, resp)
		}
	})
	t.Run("the first try's row: its decision stands", func(t *testing.T) {
		resp := answer()
		err := s.stored(&resp, &mine, chron.Row{Record: first})
		if err != nil || resp.Outcome != api.Allow || resp.Reason != decide.ReasonOwnAIOrg || resp.Message != "allowed" ||
			len(resp.SkillRules) != 1 || resp.Revision != "" || resp.DecisionID != "k" {
			t.Fatalf("stored = %v, %+v; want the first try's ALLOW", err, resp)
		}
	})
	t.Run("a skill version resolved from an older snapshot: the first decision stands", func(t *testing.T) {
		resp := answer()
		if err := s.stored(&resp, &mine, with(func(r *chron.Record) { r.SkillVersionID = "sv-old" })); err != nil || resp.Outcome != api.Allow {
			t.Fatalf("stored = %v, %+v; want the first try's ALLOW", err, resp)
		}
	})
	for name, row := range map[string]chron.Row{
		"another action": with(func(r *chron.Record) { r.Action = "deploy:production" }),
		"another agent":  with(func(r *chron.Record) { r.AgentUID = "v" }),
		"another kind":   with(func(r *chron.Record) { r.Kind = chron.KindInit }),
	} {
		t.Run(name+": refused", func(t *testing.T) {
			resp := answer()
			kr, ok := refusedKey(nil, s.stored(&resp, &mine, row))
			if !ok || kr.reason != api.ReasonIdempotencyConflict || resp.Outcome != api.Deny {
				t.Fatalf("stored = %v, %+v; want %s and the answer untouched", kr, resp, api.ReasonIdempotencyConflict)
			}
		})
	}
	t.Run("older than the window: refused", func(t *testing.T) {
		resp := answer()
		kr, ok := refusedKey(nil, s.stored(&resp, &mine, with(func(r *chron.Record) { r.Time = now.Add(-KeyWindow - time.Second) })))
		if !ok || kr.reason != api.ReasonIdempotencyExpired || !strings.Contains(kr.message, "new key") {
			t.Fatalf("stored = %v; want %s", kr, api.ReasonIdempotencyExpired)
		}
	})
	t.Run("another ID: nothing to say", func(t *testing.T) {
		resp := answer()
		if err := s.stored(&resp, &mine, chron.Row{}); err != nil || !reflect.DeepEqual(resp, answer()) {
			t.Fatalf("stored = %v, %+v", err, resp)
		}
	})
}

func TestDecisionStatus(t *testing.T) {
	for _, c := range []struct {
		outcome, reason string
		want            int
	}{
		{api.Allow, decide.ReasonOwnAIOrg, http.StatusOK},
		{api.Deny, decide.ReasonUnauthenticated, http.StatusUnauthorized},
		{api.Deny, api.ReasonBadRequest, http.StatusBadRequest},
		{api.Deny, decide.ReasonAgentInactive, http.StatusForbidden},
	} {
		if got := decisionStatus(c.outcome, c.reason); got != c.want {
			t.Errorf("decisionStatus(%s, %s) = %d; want %d", c.outcome, c.reason, got, c.want)
		}
	}
}
