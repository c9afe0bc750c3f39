package server

// POST /v/init: an agent starting up learns who it is and what it runs as
// (its pinned skill version's display name, email identity and system
// prompt), or why it may not act. Every init an authenticated agent makes
// is a Chron row of kind init, committed before the answer, like a
// decision.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

func (s *Server) init(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshots.Snapshot()
	newRecord := func() *chron.Record {
		id := chron.NewID()
		return &chron.Record{ID: id, Kind: chron.KindInit, Replica: s.Replica, RequestID: requestID(r, id)}
	}
	if snap == nil {
		resp := api.ValidateResponse{Outcome: api.Deny, Reason: api.ReasonNotReady, Message: notReady(s.Snapshots)}
		_ = s.record(r.Context(), newRecord(), &resp) // a DENY whatever the write does
		writeJSON(w, http.StatusServiceUnavailable, resp)
		return
	}
	who := s.authenticate(r.Context(), snap, r)
	agent := who.agent
	if agent == nil {
		s.refuse(w, r, snap, who) // counted in its interval's auth.refused row
		return
	}
	rec := newRecord()
	rec.Actor = who.actor
	resp := api.ValidateResponse{Revision: snap.Revision}

	var d decide.Decision
	var status int
	var body api.InitRequest
	if field, err := decodeInit(w, r, &body); err != nil {
		d = decide.Decision{Outcome: decide.Deny, Reason: api.ReasonBadRequest, Message: err.Error(), Agent: agent}
		resp.Field, status = field, http.StatusBadRequest
	} else {
		d = decide.Init(snap, agent, body.SkillVersionID, s.Now())
		status = decisionStatus(string(d.Outcome), d.Reason)
	}
	fill(&resp, rec, d)
	rec.Context = map[string]any{"presented_skill_version_id": truncate(body.SkillVersionID, maxSkillVersionIDLen)}
	if sv := d.SkillVersion; sv != nil {
		// The prompt itself is bound by the digest the row records.
		rec.Context["agent_email"], rec.Context["skill_display_name"] = sv.AgentEmail, sv.DisplayName
	}
	if err := s.record(r.Context(), rec, &resp); err != nil {
		writeJSON(w, failedStatus(err), resp)
		return
	}
	if resp.Outcome != api.Allow {
		writeJSON(w, status, resp)
		return
	}
	sv := d.SkillVersion
	ok := body.SkillVersionID == sv.ID
	msg := d.Message // what a mismatched version means; nothing to say otherwise
	if ok {
		msg = ""
	}
	writeJSON(w, http.StatusOK, api.InitResponse{
		Agent: resp.Agent, UID: agent.UID, DisplayName: agent.DisplayName, Org: agent.Org, Anchor: agent.Anchor,
		Phase: string(agent.Phase), Active: agent.Active, SkillVersionID: sv.ID, SkillDigest: sv.Digest,
		SkillVersionOK: ok, Message: msg,
		Skill: sv.Skill, SkillVersion: sv.Version, SkillDisplayName: sv.DisplayName, AgentEmail: sv.AgentEmail, SystemPrompt: sv.SystemPrompt,
		DecisionID: resp.DecisionID, ChronID: resp.ChronID, Revision: resp.Revision,
	})
}

// maxSkillVersionIDLen bounds a presented skill version id.
const maxSkillVersionIDLen = 128

// decodeInit reads a /v/init body: empty, or a JSON object whose
// skill_version_id, if any, is bounded. Other fields are ignored.
func decodeInit(w http.ResponseWriter, r *http.Request, out *api.InitRequest) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := json.NewDecoder(r.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, new(*http.MaxBytesError)):
			return "body", errBodyTooLarge
		case errors.As(err, &ute) && ute.Field != "":
			return ute.Field, fmt.Errorf("field %q must be a string, not %s", ute.Field, ute.Value)
		}
		return "body", fmt.Errorf(`request body is not a JSON object: send {"skill_version_id": "..."} or nothing`)
	}
	if len(out.SkillVersionID) > maxSkillVersionIDLen {
		return "skill_version_id", fmt.Errorf("skill_version_id is longer than %d characters", maxSkillVersionIDLen)
	}
	return "", nil
}
