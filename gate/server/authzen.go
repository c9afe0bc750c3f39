package server

// The OpenID AuthZEN Authorization API 1.0 evaluation endpoints. An
// AuthZEN evaluation is a /v/validate decision in another shape: the same
// authentication (agent token or projected ServiceAccount token), the
// same decision function, the same Chron row (kind decision), committed
// before the answer. A decision is HTTP 200 with "decision" true only for
// an ALLOW; a request the gate cannot decide is an HTTP error whose body
// is still {"decision": false, ...}; no row, no answer (fail-closed).

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// maxParallelEvaluations bounds the evaluations of one execute_all batch
// that wait for their Chron rows at once (they share group commits).
const maxParallelEvaluations = 8

// evaluated is one evaluation's answer and its HTTP status.
type evaluated struct {
	decision api.AuthZENDecision
	status   int
}

// authzenCaller authenticates an AuthZEN request. When it returns nil the
// refusal has been written.
func (s *Server) authzenCaller(w http.ResponseWriter, r *http.Request) (*decide.Snapshot, *caller) {
	echoRequestID(w, r)
	snap := s.Snapshots.Snapshot()
	if snap == nil {
		resp := api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)}
		_ = s.record(r.Context(), s.authzenRecord(r), &resp) // a DENY whatever the write does
		writeJSON(w, http.StatusServiceUnavailable, authzenDecision(&resp, "", false))
		return nil, nil
	}
	who := s.authenticate(r.Context(), snap, r)
	if who.agent == nil {
		status, resp := s.refusal(w, r, snap, who) // counted in its interval's auth.refused row
		writeJSON(w, status, authzenDecision(&resp, "", false))
		return nil, nil
	}
	return snap, &who
}

func (s *Server) authzenEvaluation(w http.ResponseWriter, r *http.Request) {
	snap, who := s.authzenCaller(w, r)
	if who == nil {
		return
	}
	var ev api.AuthZENEvaluation
	if err := decodeAuthZEN(w, r, MaxBodyBytes, &ev); err != nil {
		out := s.evaluate(r.Context(), r, snap, who, nil, err)
		writeJSON(w, out.status, out.decision)
		return
	}
	out := s.evaluate(r.Context(), r, snap, who, &ev, nil)
	writeJSON(w, out.status, out.decision)
}

func (s *Server) authzenEvaluations(w http.ResponseWriter, r *http.Request) {
	snap, who := s.authzenCaller(w, r)
	if who == nil {
		return
	}
	var body api.AuthZENEvaluationsRequest
	bad := decodeAuthZEN(w, r, api.MaxAuthZENBatchBytes, &body)
	semantic := api.SemanticExecuteAll
	if bad == nil && body.Options != nil && body.Options.EvaluationsSemantic != "" {
		semantic = body.Options.EvaluationsSemantic
		switch semantic {
		case api.SemanticExecuteAll, api.SemanticDenyOnFirstDeny, api.SemanticPermitOnFirstPermit:
		default:
			bad = badEval("options.evaluations_semantic", "options.evaluations_semantic is %.64q; it is one of %s, %s, %s",
				semantic, api.SemanticExecuteAll, api.SemanticDenyOnFirstDeny, api.SemanticPermitOnFirstPermit)
		}
	}
	if bad == nil && len(body.Evaluations) > api.MaxAuthZENEvaluations {
		bad = badEval("evaluations", "a batch holds at most %d evaluations, not %d; split it", api.MaxAuthZENEvaluations, len(body.Evaluations))
	}
	if bad != nil || len(body.Evaluations) == 0 {
		// Without evaluations the batch is one evaluation of its defaults.
		out := s.evaluate(r.Context(), r, snap, who, &body.AuthZENEvaluation, bad)
		writeJSON(w, out.status, out.decision)
		return
	}
	items := make([]api.AuthZENEvaluation, len(body.Evaluations))
	for i, it := range body.Evaluations {
		items[i] = withDefaults(it, body.AuthZENEvaluation)
	}
	outs := s.evaluateAll(r.Context(), r, snap, who, items, semantic)
	resp := api.AuthZENEvaluationsResponse{Evaluations: make([]api.AuthZENDecision, len(outs))}
	status := http.StatusOK
	for i, o := range outs {
		resp.Evaluations[i] = o.decision
		// A row that did not commit fails the batch (a PEP treats the
		// error as a deny of everything); a refused item is only that
		// item's false.
		if o.status == http.StatusServiceUnavailable || o.status == http.StatusTooManyRequests {
			status = o.status
		}
	}
	writeJSON(w, status, resp)
}

// evaluateAll runs a batch: execute_all concurrently, the short-circuit
// semantics in order, stopping after the evaluation that decides them.
func (s *Server) evaluateAll(ctx context.Context, r *http.Request, snap *decide.Snapshot, who *caller, items []api.AuthZENEvaluation, semantic string) []evaluated {
	if semantic == api.SemanticExecuteAll {
		outs := make([]evaluated, len(items))
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxParallelEvaluations)
		for i := range items {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				outs[i] = s.evaluate(ctx, r, snap, who, &items[i], nil)
			}()
		}
		wg.Wait()
		return outs
	}
	var outs []evaluated
	for i := range items {
		o := s.evaluate(ctx, r, snap, who, &items[i], nil)
		outs = append(outs, o)
		if o.decision.Decision == (semantic == api.SemanticPermitOnFirstPermit) {
			break
		}
	}
	return outs
}

// withDefaults fills what an item of a batch leaves out from the batch's
// defaults; a member an item sets replaces the default whole.
func withDefaults(it, def api.AuthZENEvaluation) api.AuthZENEvaluation {
	if it.Subject == nil {
		it.Subject = def.Subject
	}
	if it.Action == nil {
		it.Action = def.Action
	}
	if it.Resource == nil {
		it.Resource = def.Resource
	}
	if it.Context == nil {
		it.Context = def.Context
	}
	return it
}

// evaluate decides one evaluation (or records why it cannot: bad) and
// records it exactly as /v/validate records a decision.
func (s *Server) evaluate(ctx context.Context, r *http.Request, snap *decide.Snapshot, who *caller, ev *api.AuthZENEvaluation, bad *evalError) evaluated {
	start := time.Now()
	rec := s.authzenRecord(r)
	rec.Actor = who.actor
	var req decide.Request
	if bad == nil {
		req, bad = authzenRequest(who.agent, ev)
	}
	var d decide.Decision
	status := http.StatusOK // a decision, ALLOW or DENY, is 200 in AuthZEN
	field := ""
	if bad != nil {
		d = decide.Decision{Outcome: decide.Deny, Reason: bad.reason, Message: bad.message, Agent: who.agent}
		status, field = bad.status(), bad.field
		if ev != nil && ev.Action != nil {
			rec.Action = truncate(ev.Action.Name, decide.MaxActionLen)
		}
		if bad.reason == api.ReasonSubjectMismatch { // who the agent asked about
			rec.Context = map[string]any{"authzen_subject": map[string]any{
				"type": truncate(ev.Subject.Type, 256), "id": truncate(ev.Subject.ID, 256)}}
		}
	} else {
		req.Now = s.Now()
		d = decide.Decide(snap, req)
		rec.Action, rec.Context = req.Action, req.Context
		if d.Reason == decide.ReasonApprovalRequired {
			// AuthZEN has no way to present an approval: no request is made.
			d.Message = "a RequireApproval policy rule holds this call for a person's approval, which an AuthZEN evaluation cannot present: " +
				"ask through POST /v/validate, which answers with an approval_id (docs/policies.md)"
		}
	}
	resp := api.ValidateResponse{Revision: snap.Revision}
	fill(&resp, rec, d)
	if err := s.record(ctx, rec, &resp); err != nil {
		status, field = failedStatus(err), ""
	}
	s.Metrics.observe(resp.Outcome, resp.Reason, time.Since(start))
	return evaluated{decision: authzenDecision(&resp, field, status == http.StatusOK), status: status}
}

// authzenRecord starts a decision row for an AuthZEN request.
func (s *Server) authzenRecord(r *http.Request) *chron.Record {
	id := chron.NewID()
	return &chron.Record{ID: id, Kind: chron.KindDecision, Replica: s.Replica, RequestID: requestID(r, id)}
}

// authzenDecision is resp in AuthZEN's shape; decided says the answer is
// a decision (not an error), so an ALLOW may be true.
func authzenDecision(resp *api.ValidateResponse, field string, decided bool) api.AuthZENDecision {
	c := &api.AuthZENDecisionContext{ReasonCode: resp.Reason, DecisionID: resp.DecisionID, ChronID: resp.ChronID, Field: field, Audit: resp.Audit}
	if resp.Message != "" {
		c.Reason = map[string]string{"en": resp.Message}
	}
	return api.AuthZENDecision{Decision: decided && resp.Outcome == api.Allow, Context: c}
}

// echoRequestID returns the caller's X-Request-ID, as AuthZEN asks, when
// it is sane (the same rule that lets it into the Chron row).
func echoRequestID(w http.ResponseWriter, r *http.Request) {
	if v := r.Header.Get("X-Request-Id"); v != "" && requestID(r, "") == v {
		w.Header().Set("X-Request-ID", v)
	}
}

// authzenMetadata serves the PDP's metadata. Its URLs are under
// PublicURL, or else the address the caller used (the Host it sent), so
// that the metadata's policy_decision_point is the URL a client fetched
// it under, as AuthZEN clients check.
func (s *Server) authzenMetadata(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimSuffix(s.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u, err := url.Parse(scheme + "://" + r.Host)
		if r.Host == "" || len(r.Host) > 256 || err != nil || u.Host != r.Host || u.User != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the request's Host is not a valid host[:port]; or set the gate's --public-url"})
			return
		}
		base = u.String()
	}
	writeJSON(w, http.StatusOK, api.AuthZENMetadata{PolicyDecisionPoint: base,
		AccessEvaluationEndpoint: base + api.AuthZENEvaluationPath, AccessEvaluationsEndpoint: base + api.AuthZENEvaluationsPath})
}
