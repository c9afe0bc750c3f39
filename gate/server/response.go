package server

// The /v/validate answer, appended by hand: the bytes json.NewEncoder
// wrote for api.ValidateResponse (fields in struct order, omitempty ones
// left out when empty, HTML escaping on, a final newline), without
// reflection. response_test.go compares the two.

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/jsonw"
)

// The headers every JSON answer carries, shared: net/http only reads a
// header's values, and Set replaces the slice rather than changing it.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func setJSONHeaders(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
}

// responseBufs holds answer buffers; an answer is a few hundred bytes
// (its message, rules and policies are bounded upstream).
var responseBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeValidate writes a /v/validate answer as writeJSON wrote it.
func writeValidate(w http.ResponseWriter, status int, resp *api.ValidateResponse) {
	setJSONHeaders(w)
	w.WriteHeader(status)
	bp := responseBufs.Get().(*[]byte)
	b := append(appendValidateResponse((*bp)[:0], resp), '\n')
	_, _ = w.Write(b) // a writer does not keep what it is given
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		responseBufs.Put(bp)
	}
}

// appendValidateResponse appends json.Marshal(resp).
func appendValidateResponse(b []byte, r *api.ValidateResponse) []byte {
	b = append(b, `{"outcome":`...)
	b = jsonw.AppendString(b, r.Outcome)
	b = append(b, `,"reason":`...)
	b = jsonw.AppendString(b, r.Reason)
	b = append(b, `,"message":`...)
	b = jsonw.AppendString(b, r.Message)
	b = appendOmitEmpty(b, `,"decision_id":`, r.DecisionID)
	b = appendOmitEmpty(b, `,"chron_id":`, r.ChronID)
	b = appendOmitEmpty(b, `,"field":`, r.Field)
	b = appendOmitEmpty(b, `,"agent":`, r.Agent)
	b = appendOmitEmpty(b, `,"anchor":`, r.Anchor)
	b = appendOmitEmpty(b, `,"skill_version_id":`, r.SkillVersionID)
	b = appendMatches(b, `,"policies":`, r.Policies)
	b = appendMatches(b, `,"audit":`, r.Audit)
	if len(r.SkillRules) > 0 {
		b = append(b, `,"skill_rules":[`...)
		for i, s := range r.SkillRules {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.AppendString(b, s)
		}
		b = append(b, ']')
	}
	b = appendOmitEmpty(b, `,"revision":`, r.Revision)
	b = appendOmitEmpty(b, `,"approval_id":`, r.ApprovalID)
	b = appendOmitEmpty(b, `,"pinned_skill_version_id":`, r.PinnedSkillVersionID)
	return append(b, '}')
}

func appendOmitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return jsonw.AppendString(append(b, name...), v)
}

func appendMatches(b []byte, name string, ms []api.PolicyMatch) []byte {
	if len(ms) == 0 {
		return b
	}
	b = append(append(b, name...), '[')
	for i := range ms {
		m := &ms[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.AppendString(append(b, `{"name":`...), m.Name)
		b = strconv.AppendInt(append(b, `,"version":`...), m.Version, 10)
		b = jsonw.AppendString(append(b, `,"rule":`...), m.Rule)
		b = jsonw.AppendString(append(b, `,"effect":`...), m.Effect)
		b = append(b, '}')
	}
	return append(b, ']')
}
