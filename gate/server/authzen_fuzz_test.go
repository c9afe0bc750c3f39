package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/decide"
)

// FuzzAuthZENRequest: whatever the body, decoding and mapping an AuthZEN
// evaluation never panics; what they accept is about the authenticated
// agent only, with a valid action and a context within the engine's
// bounds; what they refuse names a member of the request.
func FuzzAuthZENRequest(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"type":"agent","id":"ns/bot","properties":{"skill_version_id":"sv"}},"action":{"name":"deploy:staging"},"context":{"target":"eu"}}`,
		`{"subject":{"type":"agent","id":"ns/bot","properties":{"skill_version_id":"sv"}},"action":{"name":"a"},"resource":{"type":"t","id":"i","properties":{"x":[1,{"y":2}]}}}`,
		`{"subject":{"type":"agent","id":"ns/other","properties":{"skill_version_id":"sv"}},"action":{"name":"a"}}`,
		`{"subject":{"type":"agent","id":"ns/bot","properties":{"skill_version_id":"sv"}},"action":{"name":"a"},"context":{"resource":1},"resource":{"type":"t","id":"i"}}`,
		`{"subject":null}`, `[]`, `{"action":{"name":7}}`, ``,
	} {
		f.Add([]byte(s))
	}
	agent := &decide.Agent{Namespace: "ns", Name: "bot"}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, api.AuthZENEvaluationPath, bytes.NewReader(body))
		var ev api.AuthZENEvaluation
		bad := decodeAuthZEN(httptest.NewRecorder(), r, MaxBodyBytes, &ev)
		var req decide.Request
		if bad == nil {
			req, bad = authzenRequest(agent, &ev)
		}
		if bad != nil {
			if bad.field == "" || bad.message == "" || (bad.reason != api.ReasonBadRequest && bad.reason != api.ReasonSubjectMismatch) {
				t.Fatalf("refusal without a member or words: %+v", bad)
			}
			return
		}
		if req.Agent != agent || ev.Subject.ID != "ns/bot" || ev.Subject.Type != api.AuthZENSubjectType {
			t.Fatalf("accepted a request about %+v", ev.Subject)
		}
		if err := decide.ValidateAction(req.Action); err != nil || req.SkillVersionID == "" {
			t.Fatalf("accepted action %q, skill version %q", req.Action, req.SkillVersionID)
		}
		if err := checkContext(req.Context, 1); err != nil {
			t.Fatalf("accepted a context out of bounds: %v", err)
		}
	})
}
