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

// TimedLog is a Log that bounds a write's wait itself (chron.Writer),
// without a context timer per decision. A Log that wraps a writer should
// be one too, or every decision pays for that timer.
type TimedLog interface {
	WriteWithin(ctx context.Context, r *chron.Record, d time.Duration) (chron.Row, error)
}

// write stores rec within WriteTimeout.
func (s *Server) write(ctx context.Context, rec *chron.Record) (chron.Row, error) {
	if l, ok := s.Log.(TimedLog); ok && s.WriteTimeout > 0 {
		return l.WriteWithin(ctx, rec, s.WriteTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, s.WriteTimeout)
	defer cancel()
	return s.Log.Write(ctx, rec)
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
	// Limits bounds failed authentications (limit.go).
	Limits AuthLimits
	// Approvals finds the ActionApprovals retries present (approval.go);
	// nil: every presented approval is unknown (APPROVAL_PENDING).
	Approvals Approvals
	// Uses tells GET /v/approvals/{id} an approval already used; nil
	// reports approved ones as approved until the retry finds them used.
	Uses ApprovalUses
	// Refusals records refused unauthenticated requests in Chron,
	// aggregated (refusals.go); nil: one over Log, whose last interval
	// is lost at exit unless Flush is called.
	Refusals *Refusals
	// PublicURL is the gate's base URL as clients reach it, e.g.
	// https://claiim-gate.claiim-system.svc:8181: the AuthZEN metadata
	// names its endpoints under it. Empty: the address each caller used.
	PublicURL string

	draining atomic.Bool
	limits   *authLimiter
}

// Drain makes /ready answer 503 while decisions are still answered, so
// load balancers and Service endpoints stop sending new requests before
// the gate stops listening (a rollout without refused connections).
func (s *Server) Drain() { s.draining.Store(true) }

// NewHTTPServer is the gate API's http.Server (the gate command's, and
// the benchmark's, so it measures the same one): its timeouts bound what a
// slow or stalled client holds.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
}

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
	if s.Refusals == nil {
		s.Refusals = &Refusals{Log: s.Log, Replica: s.Replica, Logger: s.Logger}
	}
	if s.Refusals.Metrics == nil {
		s.Refusals.Metrics = s.Metrics
	}
	s.Refusals.defaults()
	s.limits = newAuthLimiter(s.Limits, s.Now)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("POST /v/init", s.init)
	mux.HandleFunc("POST /v/validate", s.validate)
	mux.HandleFunc("GET /v/approvals/{id}", s.approvalStatus)
	mux.HandleFunc("POST "+api.AuthZENEvaluationPath, s.authzenEvaluation) // authzen.go
	mux.HandleFunc("POST "+api.AuthZENEvaluationsPath, s.authzenEvaluations)
	mux.HandleFunc("GET "+api.AuthZENMetadataPath, s.authzenMetadata)
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
	var resp api.ValidateResponse
	var status int // every branch below sets it
	refused := false

	defer func() {
		if !refused { // refusals have their own metric (and a tarpit's wait)
			s.Metrics.observe(resp.Outcome, resp.Reason, time.Since(start))
		}
	}()

	newRecord := func() *chron.Record {
		id := chron.NewID()
		return &chron.Record{ID: id, Kind: chron.KindDecision, Replica: s.Replica, RequestID: requestID(r, id)}
	}
	if snap == nil {
		resp = api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)}
		status = http.StatusServiceUnavailable
		// Already a DENY: a failed write only changes the reason it gives.
		_ = s.record(r.Context(), newRecord(), &resp)
		writeValidate(w, status, &resp)
		return
	}
	resp.Revision = snap.Revision
	who := s.authenticate(r.Context(), snap, r)
	agent := who.agent
	if agent == nil {
		// auth.go: counted, not a decision row of its own; junk costs
		// no more than it must.
		resp, refused = s.refuse(w, r, snap, who), true
		return
	}
	rec := newRecord()
	rec.Actor = who.actor

	var d decide.Decision
	var body api.ValidateRequest
	field, perr := decodeValidate(w, r, &body)
	if perr == nil {
		field, perr = useKey(r, rec, agent) // idempotency.go
	}
	switch {
	case perr != nil:
		d = decide.Decision{Outcome: decide.Deny, Reason: api.ReasonBadRequest, Message: perr.Error(), Agent: agent}
		resp.Field = field
		status = http.StatusBadRequest
		rec.Action = truncate(body.Action, decide.MaxActionLen)
	default:
		dreq := decide.Request{Agent: agent, Action: body.Action, Context: body.Context, SkillVersionID: body.SkillVersionID, Now: s.Now()}
		s.presented(r.Context(), &dreq, body.ApprovalID, rec) // approval.go
		d = decide.Decide(snap, dreq)
		rec.Action, rec.Context = body.Action, body.Context
		status = decisionStatus(string(d.Outcome), d.Reason)
		fill(&resp, rec, d)
		s.approvalSteps(r.Context(), rec, &resp, d, dreq)
	}
	if perr != nil {
		fill(&resp, rec, d)
	}
	if err := s.record(r.Context(), rec, &resp); err != nil {
		status = failedStatus(err)
		if kr, ok := refusedKey(r, err); ok {
			status = s.refuseKey(r.Context(), rec, &resp, kr)
		}
	} else if resp.Outcome != string(d.Outcome) || resp.Reason != d.Reason {
		status = decisionStatus(resp.Outcome, resp.Reason) // a retry: the first try's decision stands
	}
	writeValidate(w, status, &resp)
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
	row, err := s.write(ctx, rec)
	if err != nil {
		s.Logger.Error(err, "Chron write failed; answering DENY", "decision", rec.ID, "agent", rec.AgentNamespace+"/"+rec.AgentName)
		reason, msg := api.ReasonChronUnavailable, "the decision could not be recorded in Chron, so it is DENY (fail-closed); check the gate's database"
		switch {
		case errors.Is(err, chron.ErrOverloaded):
			reason, msg = api.ReasonOverloaded, "the gate is overloaded and sheds this request as DENY; retry with backoff"
		case errors.Is(err, chron.ErrConflict):
			msg = "the decision's id is already in Chron with different content, so it is DENY (fail-closed); report it to the platform team: the gate's log names the id"
		}
		*resp = api.ValidateResponse{Outcome: api.Deny, Reason: reason, Message: msg, DecisionID: rec.ID, Agent: resp.Agent, Revision: resp.Revision,
			PinnedSkillVersionID: resp.PinnedSkillVersionID}
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
	resp.PinnedSkillVersionID = d.PinnedVersionID
	for _, p := range d.Policies {
		m := api.PolicyMatch{Name: p.Policy, Version: p.Version, Rule: p.Rule, Effect: string(p.Effect)}
		if p.Enforcement != "" { // Audit
			resp.Audit = append(resp.Audit, m) // would have denied; the answer is not its
		} else {
			resp.Policies = append(resp.Policies, m)
		}
		rec.Policies = append(rec.Policies, chron.PolicyMatch{Name: p.Policy, Version: p.Version, Rule: p.Rule, Effect: string(p.Effect),
			Enforcement: string(p.Enforcement)})
	}
	for _, f := range d.Forbidden {
		resp.SkillRules = append(resp.SkillRules, "forbidden:"+f)
	}
	for _, a := range d.Allowed {
		resp.SkillRules = append(resp.SkillRules, "allowed:"+a)
	}
	rec.SkillRules = resp.SkillRules
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

// writeJSON writes v as JSON; a /v/validate answer goes through its
// hand-written encoding (response.go), with the same bytes.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if resp, ok := v.(api.ValidateResponse); ok {
		writeValidate(w, status, &resp)
		return
	}
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
