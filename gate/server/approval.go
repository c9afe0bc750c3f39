package server

// Calls held by RequireApproval policy rules (gate/decide/approval.go).
// The gate never writes to the apiserver: it records an approval request
// in Chron, the manager makes the ActionApproval from it, people approve
// it, and the agent's retry names it. The retry's ALLOW uses the approval
// up in the same transaction as its row (chron.Claim), so a second retry,
// on any replica, is DENY APPROVAL_USED.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Approvals finds an ActionApproval by namespace and name in the gate's
// informer cache; nil when it is not there (yet).
type Approvals interface {
	Approval(ctx context.Context, namespace, name string) *claiimv1.ActionApproval
}

// ApprovalUses tells whether an approval was used, and by which decision
// ("" when unused): chron.ApprovalUse over the gate's pool.
type ApprovalUses func(ctx context.Context, approvalID string) (string, error)

// approvalRowSpace seeds the id of an approval.requested row from its
// decision's: a retry with the same Idempotency-Key writes the same row.
var approvalRowSpace = uuid.MustParse("a7f1d0c4-3b2e-4f6a-9d8c-2e5b7c1a0f93")

// validApprovalID: a UUID in practice; bounded printable ASCII, lowercase
// as a Kubernetes name is.
func validApprovalID(id string) bool {
	return len(id) <= api.MaxApprovalIDLen && !strings.ContainsFunc(id, func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-'
	})
}

// presented fills what Decide needs to judge a presented approval, and
// links the decision's row to it.
func (s *Server) presented(ctx context.Context, req *decide.Request, id string, rec *chron.Record) {
	if id == "" {
		return
	}
	req.ApprovalID, req.ContextDigest = id, decide.ContextDigest(req.Context)
	rec.RequestID = id
	if s.Approvals != nil {
		req.Approval = s.Approvals.Approval(ctx, req.Agent.Namespace, id)
	}
}

// approvalSteps does what a held decision needs before its row is
// written: the approval request's own row for APPROVAL_REQUIRED, the claim
// for an approved ALLOW. A request that can't be recorded turns the
// answer into DENY CHRON_UNAVAILABLE.
func (s *Server) approvalSteps(ctx context.Context, rec *chron.Record, resp *api.ValidateResponse, d decide.Decision, req decide.Request) {
	c := d.Approval
	switch {
	case c == nil:
	case d.Reason == decide.ReasonApprovalRequired:
		resp.ApprovalID = rec.ID
		if err := s.requestApproval(ctx, rec, d, req); err != nil {
			s.Logger.Error(err, "could not record an approval request; answering DENY", "decision", rec.ID)
			resp.Outcome, resp.Reason, resp.ApprovalID = api.Deny, api.ReasonChronUnavailable, ""
			resp.Message = "the approval request could not be recorded in Chron, so it is DENY (fail-closed); retry, and check the gate's database"
		}
	case c.Use != "":
		resp.ApprovalID = c.Use
		rec.Claim = &chron.Claim{ApprovalID: c.Use, Taken: func(r chron.Record) chron.Record {
			r.Outcome, r.Reason = api.Deny, api.ReasonApprovalUsed
			r.Message = "approval " + c.Use + " already allowed one call; an approval holds for one call only: ask again without approval_id"
			return r
		}}
	default:
		resp.ApprovalID = req.ApprovalID
	}
}

// requestApproval writes the approval.requested row the manager turns
// into an ActionApproval: the exact call (the context's digest; the
// context itself, masked, for the people who decide), the rule, the
// expiry.
func (s *Server) requestApproval(ctx context.Context, rec *chron.Record, d decide.Decision, req decide.Request) error {
	c, a, now := d.Approval, req.Agent, s.Now()
	var sa string
	if a.ServiceAccount != "" {
		sa = "system:serviceaccount:" + a.Namespace + ":" + a.ServiceAccount
	}
	ar := &chron.Record{
		ID: uuid.NewSHA1(approvalRowSpace, []byte(rec.ID)).String(), Time: now, Kind: chron.KindApprovalRequested,
		Actor: rec.Actor, AgentName: a.Name, AgentNamespace: a.Namespace, AgentUID: a.UID, Org: a.Org, Anchor: a.Anchor,
		Action: req.Action, Outcome: api.Deny, Reason: d.Reason, Message: d.Message,
		SkillVersionID: req.SkillVersionID, Policies: rec.Policies, Replica: s.Replica, RequestID: rec.ID,
		Context: map[string]any{
			"approval_id": rec.ID, "context_digest": decide.ContextDigest(req.Context), "context": req.Context,
			"approvals_required": c.Required, "policy": c.Policy, "rule": c.Rule, "agent_service_account": sa,
			"requested_at": now.UTC().Format(time.RFC3339), "expires_at": now.Add(c.TTL).UTC().Format(time.RFC3339),
		},
	}
	if d.SkillVersion != nil {
		ar.SkillDigest = d.SkillVersion.Digest
	}
	wctx, cancel := context.WithTimeout(ctx, s.WriteTimeout)
	defer cancel()
	_, err := s.Log.Write(wctx, ar)
	return err
}

// approvalStatus answers GET /v/approvals/{id} for the agent whose call
// it is (WaitForApproval polls it): pending, approved, denied or expired,
// as a retry would find it now. Approved does not promise an ALLOW: the
// approval may be used, or the world changed, by the time of the retry.
func (s *Server) approvalStatus(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshots.Snapshot()
	if snap == nil {
		writeJSON(w, http.StatusServiceUnavailable, api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)})
		return
	}
	who := s.authenticate(r.Context(), snap, r)
	agent := who.agent
	if agent == nil {
		s.refuse(w, r, snap, who)
		return
	}
	id := r.PathValue("id")
	if !validApprovalID(id) {
		writeJSON(w, http.StatusBadRequest, api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonBadRequest, Field: "id",
			Message: "an approval id is the approval_id of an APPROVAL_REQUIRED answer: up to 64 lowercase letters, digits and dashes"})
		return
	}
	out := api.ApprovalStatus{ApprovalID: id, State: api.ApprovalPending}
	var ap *claiimv1.ActionApproval
	if s.Approvals != nil {
		ap = s.Approvals.Approval(r.Context(), agent.Namespace, id)
	}
	switch {
	case ap == nil:
		out.Message = "the approval is not known to the gate yet: the manager creates it from Chron within seconds of the request"
	case ap.Spec.AgentUID != agent.UID:
		// Another agent's approval: as if it did not exist.
		writeJSON(w, http.StatusNotFound, api.ApprovalStatus{ApprovalID: id, State: api.ApprovalPending, Message: "no approval " + id + " of this agent"})
		return
	default:
		reason, msg, approvers := snap.Judge(ap, 0, s.Now())
		out.Approvers, out.DeniedBy, out.ExpiresAt = ap.Approvers(), ap.Annotations[claiimv1.AnnotationDeniedBy], ap.Spec.ExpiresAt.UTC().Format(time.RFC3339)
		if reason == "" && s.Uses != nil {
			used, err := s.Uses(r.Context(), id)
			if err != nil { // can't tell: say pending, the retry decides
				reason, msg = decide.ReasonApprovalPending, "the gate cannot read Chron right now; retry shortly"
			} else if used != "" {
				out.State, out.UsedBy = api.ApprovalUsed, used
				out.Message = "approval " + id + " already allowed its one call (decision " + used + "); ask again without approval_id"
				writeJSON(w, http.StatusOK, out)
				return
			}
		}
		switch reason {
		case "":
			out.State, out.Approvers = api.ApprovalApproved, approvers
			out.Message = "approved: retry the same call with approval_id " + id
		case decide.ReasonApprovalDenied:
			out.State, out.Message = api.ApprovalDenied, msg
		case decide.ReasonApprovalExpired:
			out.State, out.Message = api.ApprovalExpired, msg
		default:
			out.Message = msg
		}
	}
	writeJSON(w, http.StatusOK, out)
}
