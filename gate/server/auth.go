package server

// Who is asking, and what the gate answers when no one it knows is.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/gate/token"
)

// caller is who presented the request.
type caller struct {
	agent  *decide.Agent
	actor  string // for Chron: "token:<id>" or "serviceaccount:<ns>/<name>"
	source string // the client's address (clientAddr)

	// When authentication failed:
	cause   string        // one of the cause* constants
	why     string        // what to do about it, when more than decide's message
	known   *decide.Agent // the agent whose token id was presented with a wrong secret
	limited string        // which limiter refused (limitedBy*), if one did
	err     error         // the token could not be checked at all (fail closed: 503)
}

// authenticate maps the Bearer credential to its agent: an agent token,
// compared by hash in constant time, or (in-cluster) a projected
// ServiceAccount token with audience claiim-gate, verified by TokenReview.
// Tokens are never logged; only the public token id or the ServiceAccount.
//
// A credential is checked before any limiter is consulted: an agent's own
// token always gets through, whatever junk shares its address or id.
func (s *Server) authenticate(ctx context.Context, snap *decide.Snapshot, r *http.Request) caller {
	src := clientAddr(r)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok = strings.TrimSpace(tok); tok == "" {
		return s.failed(caller{source: src, cause: causeNoToken, why: "no Bearer token: send Authorization: Bearer <AGENT_TOKEN>"}, "")
	}
	if id, ok := token.ID(tok); ok {
		a, found := snap.AgentByToken(id)
		if found && token.Matches(tok, a.TokenHash) {
			return caller{agent: a, actor: "token:" + id, source: src}
		}
		if !found {
			// A real token the gate does not count (its status is not the
			// manager's, or two agents share its id): its holder hears why.
			if why := snap.RefusedToken(id, tok); why != "" {
				return s.failed(caller{source: src, actor: "token:" + id, cause: causeRefusedToken, why: why}, "")
			}
			// A made-up id: naming it in Chron would only record noise,
			// and a limiter per made-up id would only churn the real ids'.
			return s.failed(caller{source: src, cause: causeUnknownToken}, "")
		}
		return s.failed(caller{source: src, actor: "token:" + id, cause: causeWrongSecret, known: a}, id)
	}
	if s.Reviewer == nil || strings.Count(tok, ".") != 2 || len(tok) > 16<<10 {
		return s.failed(caller{source: src, cause: causeMalformed}, "")
	}
	rejected := caller{source: src, cause: causeSARejected, why: "the ServiceAccount token was rejected; project one with audience " + Audience}
	ns, name, ok, found := s.Reviewer.Cached(tok)
	switch {
	case found && !ok:
		s.Metrics.review("cached")
		return s.failed(rejected, "")
	case !found:
		// A review costs the apiserver a call: it is charged to the
		// client's address before it is made, and not again if it fails.
		if by := s.limits.review(src); by != "" {
			s.Metrics.review("limited")
			rejected.limited = by
			return rejected
		}
		var err error
		if ns, name, ok, err = s.Reviewer.Review(ctx, tok); err != nil {
			s.Metrics.review("failed")
			return caller{source: src, cause: causeReviewFailed, err: err}
		}
		if !ok {
			s.Metrics.review("rejected")
			return rejected
		}
		s.Metrics.review("authenticated")
	default:
		s.Metrics.review("cached")
	}
	c := caller{actor: "serviceaccount:" + ns + "/" + name, source: src}
	if c.agent, c.why = agentForServiceAccount(snap, ns, name); c.agent == nil {
		c.cause = causeSAUnbound
		return s.failed(c, "")
	}
	return c
}

// failed charges a failed authentication to the limiters.
func (s *Server) failed(c caller, tokenID string) caller {
	c.limited = s.limits.failed(c.source, tokenID)
	return c
}

// refuse answers a request no agent was authenticated for. It does not
// wait for Chron: the answer is a DENY whatever happens, and the request
// is counted in its interval's auth.refused row, whose id it carries.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, snap *decide.Snapshot, who caller) api.ValidateResponse {
	status, resp := s.refusal(w, r, snap, who)
	writeJSON(w, status, resp)
	return resp
}

// refusal is refuse's answer, for a caller that writes it in its own
// shape (authzen.go); it sets the headers it needs (Retry-After).
func (s *Server) refusal(w http.ResponseWriter, r *http.Request, snap *decide.Snapshot, who caller) (int, api.ValidateResponse) {
	resp := api.ValidateResponse{Outcome: api.Deny, Revision: snap.Revision}
	status := http.StatusUnauthorized
	switch {
	case who.err != nil:
		if !errors.Is(who.err, ErrReviewBusy) {
			s.Logger.Error(who.err, "cannot verify a ServiceAccount token; answering DENY")
		}
		resp.Reason, status = api.ReasonNotReady, http.StatusServiceUnavailable
		resp.Message = "the gate cannot verify ServiceAccount tokens right now (TokenReview failed or is saturated), so it denies; retry shortly"
	case who.limited != "":
		after := s.limits.retryAfter(who.limited)
		resp.Reason, status = api.ReasonRateLimited, http.StatusTooManyRequests
		resp.Message = rateLimitedMessage(who.limited, after)
		w.Header().Set("Retry-After", strconv.Itoa(after))
		if !s.limits.hold(r.Context()) {
			w.Header().Set("Connection", "close")
		}
	default:
		d := decide.Decide(snap, decide.Request{})
		resp.Reason, resp.Message = d.Reason, d.Message
		if who.why != "" {
			resp.Message = who.why
		}
	}
	s.Metrics.refusal(resp.Reason, who.cause)
	resp.DecisionID = s.Refusals.count(refusalKey{path: r.URL.Path, source: who.source, cause: who.cause,
		reason: resp.Reason, actor: who.actor}, who.known)
	return status, resp
}

func rateLimitedMessage(by string, after int) string {
	what := "this address has"
	switch by {
	case limitedByToken:
		what = "this token id has"
	case limitedByTotal:
		what = "all clients together have"
	}
	return "too many requests that failed authentication: " + what + " used up the gate's allowance, so it refuses them for now; " +
		"send the agent's own AGENT_TOKEN (from its token Secret) and retry after " + strconv.Itoa(after) + "s"
}
