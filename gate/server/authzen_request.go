package server

// How an AuthZEN evaluation becomes the gate's request: the subject must
// be the authenticated agent, action.name is the action, the context is
// the request context (with the resource, when one is named, under
// context.resource), and subject.properties.skill_version_id is the skill
// version. Nothing of the body is trusted for who is asking.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/decide"
)

// evalError is an evaluation the gate refuses to decide: a malformed one
// (BAD_REQUEST, 400) or one about another subject (SUBJECT_MISMATCH, 403).
type evalError struct {
	reason, field, message string
}

func (e *evalError) Error() string { return e.message }

func (e *evalError) status() int {
	if e.reason == api.ReasonSubjectMismatch {
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func badEval(field, format string, args ...any) *evalError {
	return &evalError{reason: api.ReasonBadRequest, field: field, message: fmt.Sprintf(format, args...)}
}

const subjectShape = `{"type": "agent", "id": "<namespace>/<name>", "properties": {"skill_version_id": "<SKILL_VERSION_ID>"}}`

// authzenRequest maps ev, asked by agent, onto the decision function's
// request (Now is the caller's).
func authzenRequest(agent *decide.Agent, ev *api.AuthZENEvaluation) (decide.Request, *evalError) {
	req := decide.Request{Agent: agent}
	sub := ev.Subject
	if sub == nil {
		return req, badEval("subject", "subject is required: %s", subjectShape)
	}
	self := agent.Namespace + "/" + agent.Name
	if sub.Type != api.AuthZENSubjectType || sub.ID != self {
		return req, &evalError{reason: api.ReasonSubjectMismatch, field: "subject", message: fmt.Sprintf(
			"the subject is %.64q %.256q, but the request was authenticated as agent %s: an agent asks only about itself, as subject {\"type\": %q, \"id\": %q}",
			sub.Type, sub.ID, self, api.AuthZENSubjectType, self)}
	}
	for _, k := range sortedKeys(sub.Properties) {
		if k != api.AuthZENSkillVersionProperty {
			return req, badEval("subject.properties."+truncate(k, 64), "subject.properties holds only %s; the gate decides on the action and the context, so put other attributes in context",
				api.AuthZENSkillVersionProperty)
		}
	}
	sv, _ := sub.Properties[api.AuthZENSkillVersionProperty].(string)
	switch {
	case sv == "":
		return req, badEval("subject.properties."+api.AuthZENSkillVersionProperty,
			"subject.properties.%s is required (a string): the SKILL_VERSION_ID from the agent's token Secret", api.AuthZENSkillVersionProperty)
	case len(sv) > maxSkillVersionIDLen:
		return req, badEval("subject.properties."+api.AuthZENSkillVersionProperty, "subject.properties.%s is longer than %d characters",
			api.AuthZENSkillVersionProperty, maxSkillVersionIDLen)
	}
	req.SkillVersionID = sv
	if ev.Action == nil {
		return req, badEval("action", `action is required: {"name": "deploy:staging"}`)
	}
	if err := decide.ValidateAction(ev.Action.Name); err != nil {
		return req, badEval("action.name", "%s", err.Error())
	}
	if len(ev.Action.Properties) > 0 {
		return req, badEval("action.properties", "action.properties is not used by the gate; put the attributes in context")
	}
	req.Action = ev.Action.Name
	ctx, err := authzenContext(ev)
	if err != nil {
		return req, err
	}
	req.Context = ctx
	return req, nil
}

// authzenContext is the request context: the evaluation's context, plus
// the resource under "resource" when one is named, so that policy
// conditions and the Chron row see everything the PEP asked about.
func authzenContext(ev *api.AuthZENEvaluation) (map[string]any, *evalError) {
	ctx := ev.Context
	if res := ev.Resource; res != nil {
		if _, taken := ctx["resource"]; taken {
			return nil, badEval("context.resource", "context.resource is where the gate puts the resource; send the resource in one place")
		}
		if res.Type == "" || res.ID == "" || len(res.Type) > 256 || len(res.ID) > decide.MaxContextString {
			return nil, badEval("resource", "a resource needs a type (up to 256 characters) and an id (up to %d)", decide.MaxContextString)
		}
		r := map[string]any{"type": res.Type, "id": res.ID}
		if len(res.Properties) > 0 {
			r["properties"] = res.Properties
		}
		merged := make(map[string]any, len(ctx)+1)
		for k, v := range ctx {
			merged[k] = v
		}
		merged["resource"] = r
		ctx = merged
	}
	if err := checkContext(ctx, 1); err != nil {
		return nil, badEval("context", "%s", err.Error())
	}
	return ctx, nil
}

// decodeAuthZEN reads a bounded JSON body into out. Members the gate
// does not know are ignored (AuthZEN leaves room for them).
func decodeAuthZEN(w http.ResponseWriter, r *http.Request, limit int64, out any) *evalError {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(out)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			return badEval("body", "request body holds something after its JSON object")
		}
	}
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return badEval("body", "request body is larger than %d bytes", limit)
	case errors.As(err, &ute) && ute.Field != "":
		return badEval(ute.Field, "field %q must not be %s", ute.Field, ute.Value)
	case errors.Is(err, io.EOF):
		return badEval("body", "request body is empty; send an AuthZEN evaluation: {\"subject\": %s, \"action\": {\"name\": \"...\"}, \"context\": {...}}", subjectShape)
	}
	return badEval("body", "request body is not a JSON object: %v", err)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
