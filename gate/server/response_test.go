package server

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/api"
)

// writeJSONReflect is writeJSON as it was for every answer: the oracle the
// hand-written /v/validate encoding is compared with.
func writeJSONReflect(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// checkResponse: status, headers and body bytes are what encoding/json
// wrote, through writeValidate and through writeJSON.
func checkResponse(t *testing.T, status int, resp api.ValidateResponse) {
	t.Helper()
	want := httptest.NewRecorder()
	writeJSONReflect(want, status, resp)
	for name, write := range map[string]func(http.ResponseWriter){
		"writeValidate": func(w http.ResponseWriter) { writeValidate(w, status, &resp) },
		"writeJSON":     func(w http.ResponseWriter) { writeJSON(w, status, resp) },
	} {
		got := httptest.NewRecorder()
		write(got)
		if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || got.Body.String() != want.Body.String() {
			t.Fatalf("%s wrote %d %v\n%s\nencoding/json wrote %d %v\n%s", name, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

func TestValidateResponseMatchesEncodingJSON(t *testing.T) {
	nasty := "<a href='x'>&</a> \u2028\u2029 \x00\x1f\x7f \xff\xc3 é🎉 \"\\"
	full := api.ValidateResponse{Outcome: api.Allow, Reason: "POLICY_ALLOW", Message: nasty, DecisionID: "0190-id",
		ChronID: "gate/0/17", Field: "context", Agent: "agents/bot", Anchor: "admin@claiim.io", SkillVersionID: "v1",
		Policies:   []api.PolicyMatch{{Name: "p", Version: 3, Rule: "deploy:*", Effect: "Allow"}, {Name: nasty, Version: math.MinInt64}},
		Audit:      []api.PolicyMatch{{Name: "a", Version: math.MaxInt64, Rule: "r", Effect: "Deny"}},
		SkillRules: []string{"allowed:deploy:*", nasty, ""}, Revision: "rev-9", ApprovalID: "ap-1", PinnedSkillVersionID: "v2"}
	for _, resp := range []api.ValidateResponse{{}, full,
		{Outcome: api.Deny, Reason: api.ReasonBadRequest, Message: "x", Field: "body"},
		{Outcome: api.Deny, Policies: []api.PolicyMatch{}, Audit: []api.PolicyMatch{}, SkillRules: []string{}},
		{Outcome: api.Deny, Policies: []api.PolicyMatch{{}}, SkillRules: []string{strings.Repeat("<", 3000)}},
	} {
		checkResponse(t, http.StatusForbidden, resp)
	}
}

// FuzzValidateResponse: any text in any field, any version, any number
// of matches and rules, as encoding/json wrote it.
func FuzzValidateResponse(f *testing.F) {
	f.Add("ALLOW", "<&>\u2028", "\xff\x00", int64(3), uint8(0x3f))
	f.Add("", "", "", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, a, b, c string, version int64, set uint8) {
		r := api.ValidateResponse{Outcome: a, Reason: b, Message: c}
		pick := func(bit uint8, s string) string {
			if set&bit != 0 {
				return s
			}
			return ""
		}
		r.DecisionID, r.ChronID, r.Field, r.Agent = pick(1, a), pick(2, b), pick(4, c), pick(8, a+b)
		r.Anchor, r.SkillVersionID, r.Revision, r.ApprovalID = pick(16, c), pick(32, b), pick(64, a), pick(128, c+a)
		r.PinnedSkillVersionID = pick(1, c)
		for range set % 4 {
			r.Policies = append(r.Policies, api.PolicyMatch{Name: a, Version: version, Rule: b, Effect: c})
			r.SkillRules = append(r.SkillRules, c, a)
		}
		for range set % 3 {
			r.Audit = append(r.Audit, api.PolicyMatch{Name: c, Version: -version, Rule: a, Effect: b})
		}
		checkResponse(t, 200+int(set)%300, r)
	})
}

// BenchmarkValidateResponse is the answer's encoding, as writeJSON did it
// (reflect) and as writeValidate does it.
func BenchmarkValidateResponse(b *testing.B) {
	resp := api.ValidateResponse{Outcome: api.Deny, Reason: "POLICY_DENY", Message: "denied by policy no-prod-deploys",
		DecisionID: "019a1b2c-3d4e-7f00-8000-000000000001", ChronID: "gate/gate-0/123456", Agent: "agents/prod-deploy-bot",
		Anchor: "admin@claiim.io", SkillVersionID: "deploy-bot-v1", Revision: "r-42",
		Policies:   []api.PolicyMatch{{Name: "no-prod-deploys", Version: 3, Rule: "deploy:production", Effect: "Deny"}},
		SkillRules: []string{"forbidden:deploy:production"}}
	w := discardWriter{h: http.Header{}}
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			writeJSONReflect(w, http.StatusForbidden, resp)
		}
	})
	b.Run("appender", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			writeValidate(w, http.StatusForbidden, &resp)
		}
	})
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) WriteHeader(int)             {}
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
