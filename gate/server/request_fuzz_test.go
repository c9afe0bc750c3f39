package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/decide"
)

// FuzzDecodeValidate: whatever the body, decodeValidate never panics; a
// body it accepts is within every bound the decision engine's cost
// estimates assume (checked here by a separate walk), and a body it refuses
// is refused naming a field of the request, in JSON's words, not Go's.
// The seeds run with every `go test`; `make fuzz` searches beyond them.
func FuzzDecodeValidate(f *testing.F) {
	for _, s := range validateSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v/validate", bytes.NewReader(body))
		var out api.ValidateRequest
		field, err := decodeValidate(httptest.NewRecorder(), req, &out)
		if err != nil {
			checkRefusal(t, body, field, err.Error())
			return
		}
		checkAccepted(t, body, &out)
	})
}

// TestDecodeValidateRefusals pins the refusals the fuzz target's
// properties caught speaking Go, naming no field, or calling valid JSON
// invalid, and a body that was accepted though it is not JSON.
func TestDecodeValidateRefusals(t *testing.T) {
	for body, want := range map[string][2]string{
		`[]`:  {"body", "request body must be a JSON object, not array"},
		`"x"`: {"body", "request body must be a JSON object, not string"},
		`{"action":"a:b","context":[],"skill_version_id":"v"}`:           {"context", `field "context" must be an object, not array`},
		`{"action":"a:b","context":{"n":-1e400},"skill_version_id":"v"}`: {"context", `holds the number -1e400, which is out of range`},
		`{"action":["a:b"],"skill_version_id":"v"}`:                      {"action", `field "action" must be a string, not array`},
		`{"action":"a:b","skill_version_id":"v","actoin":1}`:             {"body", `unknown field "actoin"`},
		`{"action":"a:b","skill_version_id":"v"}]`:                       {"body", "something after its JSON object"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v/validate", strings.NewReader(body))
		field, err := decodeValidate(httptest.NewRecorder(), req, &api.ValidateRequest{})
		if err == nil || field != want[0] || !strings.Contains(err.Error(), want[1]) {
			t.Errorf("%s: field %q, %v; want field %q and a message containing %q", body, field, err, want[0], want[1])
		}
	}
}

// requestFields are the names a refusal may give, besides "body" (or a
// path under one of them, such as context.x).
var requestFields = []string{"action", "context", "skill_version_id"}

func checkRefusal(t *testing.T, body []byte, field, msg string) {
	t.Helper()
	top, _, _ := strings.Cut(field, ".")
	if top != "body" && !slices.Contains(requestFields, top) {
		t.Fatalf("refusal names %q, not a field of the request: %s\nbody %.200q", field, msg, body)
	}
	if msg == "" || !utf8.ValidString(msg) {
		t.Fatalf("refusal of field %q has no readable message: %q", field, msg)
	}
	// The agent's author reads this: JSON types, not Go's.
	for _, goWord := range []string{"interface {}", "map[", "float64", "api.", "struct"} {
		if strings.Contains(msg, goWord) {
			t.Fatalf("refusal of field %q speaks Go (%q): %s\nbody %.200q", field, goWord, msg, body)
		}
	}
	if json.Valid(body) && strings.Contains(msg, "not valid JSON") {
		t.Fatalf("refusal calls valid JSON invalid: %s\nbody %.200q", msg, body)
	}
}

func checkAccepted(t *testing.T, body []byte, out *api.ValidateRequest) {
	t.Helper()
	if len(body) > MaxBodyBytes || !json.Valid(body) {
		t.Fatalf("accepted a body of %d bytes that is over the limit or not JSON: %.200q", len(body), body)
	}
	if err := decide.ValidateAction(out.Action); err != nil {
		t.Fatalf("accepted action %q: %v", out.Action, err)
	}
	if n := len(out.SkillVersionID); n == 0 || n > 128 {
		t.Fatalf("accepted a skill_version_id of %d bytes", n)
	}
	var s shape
	s.measure(out.Context, 1)
	if s.depth > decide.MaxContextDepth || s.entries > decide.MaxContextEntries ||
		s.str > decide.MaxContextString || s.key > 256 {
		t.Fatalf("accepted a context beyond the bounds (%+v): %.200q", s, body)
	}
}

// shape is the largest of each bounded measure anywhere in a context.
type shape struct{ depth, entries, str, key int }

func (s *shape) measure(v any, depth int) {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		n = len(x)
		for k, e := range x {
			s.key = max(s.key, len(k))
			s.measure(e, depth+1)
		}
	case []any:
		n = len(x)
		for _, e := range x {
			s.measure(e, depth+1)
		}
	case string:
		s.str = max(s.str, len(x))
		return
	default:
		return
	}
	s.depth, s.entries = max(s.depth, depth), max(s.entries, n)
}

// validateSeeds are bodies at and around every bound and every way JSON
// can be wrong, so the seed run alone covers each branch of the decoder.
func validateSeeds() []string {
	nest := func(n int) string { return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) }
	keys := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
		}
		return "{" + b.String() + "}"
	}
	req := func(action, ctx, svid string) string {
		return `{"action":"` + action + `","context":` + ctx + `,"skill_version_id":"` + svid + `"}`
	}
	return []string{
		req("deploy:staging", `{"target":"eu-1","replicas":3}`, "v1"),
		req("deploy:staging", `null`, "v1"),
		req("db:orders:read", `{"l":[1,2.5,"x",null,true,{"b":[]}]}`, "v1"),
		req("deploy:staging", nest(decide.MaxContextDepth), "v1"),
		req("deploy:staging", nest(decide.MaxContextDepth+1), "v1"),
		req("deploy:staging", keys(decide.MaxContextEntries), "v1"),
		req("deploy:staging", keys(decide.MaxContextEntries+1), "v1"),
		req("deploy:staging", `{"s":"`+strings.Repeat("x", decide.MaxContextString+1)+`"}`, "v1"),
		req("deploy:staging", `{"`+strings.Repeat("k", 257)+`":1}`, "v1"),
		req("deploy:staging", `{"n":1e400}`, "v1"),
		req("deploy:staging", `[]`, "v1"),
		req("deploy:staging", `{}`, strings.Repeat("v", 129)),
		req("deploy:staging", `{}`, ""),
		req("Deploy:staging", `{}`, "v1"),
		req("deploy", `{}`, "v1"),
		req(strings.Repeat("a:", 64)+"b", `{}`, "v1"),
		`{"action":1,"context":{},"skill_version_id":"v1"}`,
		`{"action":"deploy:staging","context":{},"skill_version_id":"v1","actoin":"x"}`,
		`{"ACTION":"deploy:staging","context":{},"skill_version_id":"v1"}`,
		`{"action":"deploy:staging","action":"deploy:production","skill_version_id":"v1"}`,
		`{"action":"deploy:staging","skill_version_id":"v1"} {}`,
		`{"action":"deploy:staging","skill_version_id":"v1"}]`,
		`{"action":"deploy:staging","skill_version_id":"v1"}}`,
		`{"action":"deploy:staging","skill_version_id":"v1"}` + strings.Repeat(" ", MaxBodyBytes),
		`{"action":"deploy:stag` + "\xff" + `ing","skill_version_id":"v1"}`,
		`[]`, `"x"`, `null`, ``, `{`, `{"action":`, "\ufeff{}",
		`{"context":{"a":` + strings.Repeat("[", 10001) + `}}`,
		`{"x":"` + strings.Repeat("y", MaxBodyBytes) + `"}`,
	}
}
