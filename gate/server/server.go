// Package server is the gate's HTTP API: agents ask before every action and
// get ALLOW or DENY with a reason, only after the decision's Chron row has
// committed. Anything that goes wrong answers DENY.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/gate/token"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Snapshots gives the current snapshot (nil until ready).
type Snapshots interface {
	Snapshot() *decide.Snapshot
	Ready() error
}

// Log records decisions durably; Write returns once the row committed.
type Log interface {
	Write(ctx context.Context, r *chron.Record) (chron.Row, error)
}

// Staller is a Log that can tell it is wedged (chron.Writer): the gate
// is then not live, and a restart is the way out.
type Staller interface {
	Stalled(now time.Time) bool
}

// Pinger checks the database for readiness.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Server answers agents.
type Server struct {
	Snapshots Snapshots
	Log       Log
	DB        Pinger
	Replica   string
	// WriteTimeout bounds how long an answer waits for its Chron row.
	WriteTimeout time.Duration
	Now          func() time.Time
	Logger       logr.Logger
	Metrics      *Metrics
	// Reviewer verifies in-cluster agents' ServiceAccount tokens; nil
	// accepts agent tokens only.
	Reviewer *TokenReviewer

	draining atomic.Bool
}

// Drain makes /ready answer 503 while decisions are still answered, so
// load balancers and Service endpoints stop sending new requests before
// the gate stops listening (a rollout without refused connections).
func (s *Server) Drain() { s.draining.Store(true) }

// Handler returns the gate's routes.
func (s *Server) Handler() http.Handler {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 2 * time.Second
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(nil)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("POST /v/init", s.init)
	mux.HandleFunc("POST /v/validate", s.validate)
	return mux
}

// health is liveness: ok unless the Chron writer is wedged on a batch
// (every decision would fail closed until a restart). A database that is
// merely down is readiness's business, not a reason to restart.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if st, ok := s.Log.(Staller); ok && st.Stalled(s.Now()) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stalled",
			"reason": "the Chron writer has been on one batch for more than three commit timeouts; restart the gate"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "shutting down: the gate finishes what it has and stops"})
		return
	}
	if err := s.Snapshots.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.WriteTimeout)
	defer cancel()
	if err := s.DB.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "Chron (PostgreSQL) is unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	snap := s.Snapshots.Snapshot()
	id := chron.NewID()
	rec := &chron.Record{ID: id, Kind: chron.KindDecision, Replica: s.Replica, RequestID: requestID(r, id)}
	var resp api.ValidateResponse
	var status int // every branch below sets it

	defer func() { s.Metrics.observe(resp.Outcome, resp.Reason, time.Since(start)) }()

	if snap == nil {
		resp = api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)}
		status = http.StatusServiceUnavailable
		// Already a DENY: a failed write only changes the reason it gives.
		_ = s.record(r.Context(), rec, &resp)
		writeJSON(w, status, resp)
		return
	}
	resp.Revision = snap.Revision
	who := s.authenticate(r.Context(), snap, r)
	agent := who.agent
	rec.Actor = who.actor
	if who.err != nil {
		s.Logger.Error(who.err, "cannot verify a ServiceAccount token; answering DENY")
		resp = api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Revision: snap.Revision,
			Message: "the gate cannot verify ServiceAccount tokens right now (TokenReview failed), so it denies; retry shortly"}
		_ = s.record(r.Context(), rec, &resp) // a DENY either way
		writeJSON(w, http.StatusServiceUnavailable, resp)
		return
	}

	var d decide.Decision
	var body api.ValidateRequest
	field, perr := "", error(nil)
	if agent != nil {
		field, perr = decodeValidate(w, r, &body)
		if perr == nil {
			field, perr = useKey(r, rec, agent) // idempotency.go
		}
	}
	switch {
	case agent == nil:
		d = decide.Decide(snap, decide.Request{Agent: nil})
		if who.why != "" {
			d.Message = who.why
		}
		status = http.StatusUnauthorized
	case perr != nil:
		d = decide.Decision{Outcome: decide.Deny, Reason: api.ReasonBadRequest, Message: perr.Error(), Agent: agent}
		resp.Field = field
		status = http.StatusBadRequest
		rec.Action = truncate(body.Action, decide.MaxActionLen)
	default:
		d = decide.Decide(snap, decide.Request{Agent: agent, Action: body.Action, Context: body.Context,
			SkillVersionID: body.SkillVersionID, Now: s.Now()})
		rec.Action, rec.Context = body.Action, body.Context
		status = decisionStatus(string(d.Outcome), d.Reason)
	}
	fill(&resp, rec, d)
	if err := s.record(r.Context(), rec, &resp); err != nil {
		status = failedStatus(err)
		if kr, ok := refusedKey(r, err); ok {
			status = s.refuseKey(r.Context(), rec, &resp, kr)
		}
	} else if resp.Outcome != string(d.Outcome) || resp.Reason != d.Reason {
		status = decisionStatus(resp.Outcome, resp.Reason) // a retry: the first try's decision stands
	}
	writeJSON(w, status, resp)
}

// record writes the Chron row and turns any failure into a DENY: no answer
// leaves the gate without its row.
func (s *Server) record(ctx context.Context, rec *chron.Record, resp *api.ValidateResponse) error {
	rec.Time = s.Now()
	rec.Outcome, rec.Reason, rec.Message = resp.Outcome, resp.Reason, resp.Message
	// If the row commits after all (the wait below gave up first, or the
	// commit's outcome was unknown), the writer adds this correction, so
	// Chron never shows only an ALLOW that was refused.
	rec.Correction = answeredDeny
	ctx, cancel := context.WithTimeout(ctx, s.WriteTimeout)
	defer cancel()
	row, err := s.Log.Write(ctx, rec)
	if err != nil {
		s.Logger.Error(err, "Chron write failed; answering DENY", "decision", rec.ID, "agent", rec.AgentNamespace+"/"+rec.AgentName)
		reason, msg := api.ReasonChronUnavailable, "the decision could not be recorded in Chron, so it is DENY (fail-closed); check the gate's database"
		switch {
		case errors.Is(err, chron.ErrOverloaded):
			reason, msg = api.ReasonOverloaded, "the gate is overloaded and sheds this request as DENY; retry with backoff"
		case errors.Is(err, chron.ErrConflict):
			msg = "the decision's id is already in Chron with different content, so it is DENY (fail-closed); report it to the platform team: the gate's log names the id"
		}
		*resp = api.ValidateResponse{Outcome: api.Deny, Reason: reason, Message: msg, DecisionID: rec.ID, Agent: resp.Agent, Revision: resp.Revision}
		return err
	}
	resp.DecisionID, resp.ChronID = rec.ID, fmt.Sprintf("%s/%d", row.Stream, row.Seq)
	return s.stored(resp, rec, row) // a retry with an Idempotency-Key gets the stored decision
}

// answeredDeny is the correction of a row that committed although its
// answer was DENY CHRON_UNAVAILABLE.
func answeredDeny(r chron.Record) chron.Record {
	fix := r
	fix.ID, fix.Time, fix.Kind, fix.Outcome, fix.Reason = "", time.Time{}, chron.KindDecisionCorrection, api.Deny, api.ReasonChronUnavailable
	fix.Message = "decision " + r.ID + " was answered DENY: its row did not commit in time"
	return fix
}

// fill copies a decision into the response and the Chron record.
func fill(resp *api.ValidateResponse, rec *chron.Record, d decide.Decision) {
	resp.Outcome, resp.Reason, resp.Message = string(d.Outcome), d.Reason, d.Message
	if a := d.Agent; a != nil {
		resp.Agent, resp.Anchor = a.Namespace+"/"+a.Name, a.Anchor
		rec.AgentName, rec.AgentNamespace, rec.AgentUID, rec.Org, rec.Anchor = a.Name, a.Namespace, a.UID, a.Org, a.Anchor
	}
	if sv := d.SkillVersion; sv != nil {
		resp.SkillVersionID = sv.ID
		rec.SkillVersionID, rec.SkillDigest = sv.ID, sv.Digest
	}
	for _, p := range d.Policies {
		resp.Policies = append(resp.Policies, api.PolicyMatch{Name: p.Policy, Version: p.Version, Rule: p.Rule, Effect: string(p.Effect)})
		rec.Policies = append(rec.Policies, chron.PolicyMatch{Name: p.Policy, Version: p.Version, Rule: p.Rule, Effect: string(p.Effect)})
	}
	for _, f := range d.Forbidden {
		resp.SkillRules = append(resp.SkillRules, "forbidden:"+f)
	}
	for _, a := range d.Allowed {
		resp.SkillRules = append(resp.SkillRules, "allowed:"+a)
	}
	rec.SkillRules = resp.SkillRules
}

// caller is who presented the request.
type caller struct {
	agent *decide.Agent
	actor string // for Chron: "token:<id>" or "serviceaccount:<ns>/<name>"
	why   string // why authentication failed, when it is more than "unknown"
	err   error  // the token could not be checked at all (fail closed: 503)
}

// authenticate maps the Bearer credential to its agent: an agent token,
// compared by hash in constant time, or (in-cluster) a projected
// ServiceAccount token with audience claiim-gate, verified by TokenReview.
// Tokens are never logged; only the public token id or the ServiceAccount.
func (s *Server) authenticate(ctx context.Context, snap *decide.Snapshot, r *http.Request) caller {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{why: "no Bearer token: send Authorization: Bearer <AGENT_TOKEN>"}
	}
	tok = strings.TrimSpace(tok)
	if id, ok := token.ID(tok); ok {
		a, ok := snap.AgentByToken(id)
		if !ok || !token.Matches(tok, a.TokenHash) {
			return caller{actor: "token:" + id, why: snap.RefusedToken(id, tok)}
		}
		return caller{agent: a, actor: "token:" + id}
	}
	if s.Reviewer == nil || strings.Count(tok, ".") != 2 || len(tok) > 16<<10 {
		return caller{}
	}
	ns, name, ok, err := s.Reviewer.Review(ctx, tok)
	if err != nil {
		return caller{err: err}
	}
	if !ok {
		return caller{why: "the ServiceAccount token was rejected; project one with audience " + Audience}
	}
	c := caller{actor: "serviceaccount:" + ns + "/" + name}
	c.agent, c.why = agentForServiceAccount(snap, ns, name)
	return c
}

func (s *Server) init(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshots.Snapshot()
	if snap == nil {
		writeJSON(w, http.StatusServiceUnavailable, api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)})
		return
	}
	who := s.authenticate(r.Context(), snap, r)
	agent := who.agent
	if agent == nil {
		d := decide.Decide(snap, decide.Request{})
		resp := api.ValidateResponse{Outcome: string(d.Outcome), Reason: d.Reason, Message: d.Message}
		if who.why != "" {
			resp.Message = who.why
		}
		rec := &chron.Record{ID: chron.NewID(), Kind: chron.KindInit, Replica: s.Replica, RequestID: requestID(r, ""), Actor: who.actor}
		status := http.StatusUnauthorized
		if who.err != nil {
			resp.Reason, resp.Message, status = api.ReasonNotReady, "the gate cannot verify ServiceAccount tokens right now; retry shortly", http.StatusServiceUnavailable
		}
		if s.record(r.Context(), rec, &resp) != nil {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, resp)
		return
	}
	var body api.InitRequest
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	_ = json.NewDecoder(r.Body).Decode(&body) // an empty body is fine here
	out := api.InitResponse{Agent: agent.Namespace + "/" + agent.Name, UID: agent.UID, DisplayName: agent.DisplayName,
		Org: agent.Org, Anchor: agent.Anchor, Phase: string(agent.Phase), Active: agent.Active, Message: agent.Inactive}
	if sv, ok := snap.PinnedVersion(agent); ok {
		out.SkillVersionID, out.SkillDigest = sv.ID, sv.Digest
		out.SkillVersionOK = body.SkillVersionID == sv.ID
	}
	writeJSON(w, http.StatusOK, out)
}

// requestID takes the caller's X-Request-Id when it is sane.
func requestID(r *http.Request, fallback string) string {
	v := r.Header.Get("X-Request-Id")
	if v == "" || len(v) > 128 || strings.ContainsFunc(v, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return fallback
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// TuneGC sets the gate's garbage collector when the operator has not
// (GOGC unset): GOGC=400. The live heap is mostly the snapshot and each
// decision's garbage dies young; at the default 100 the collector cost the
// gate a third of its throughput (docs/benchmarks.md). GOMEMLIMIT, which
// the operator sets from the container's memory limit, still bounds it.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
