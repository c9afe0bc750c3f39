package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/decide"
)

type oneSnapshot struct{ s *decide.Snapshot }

func (o oneSnapshot) Snapshot() *decide.Snapshot { return o.s }
func (o oneSnapshot) Ready() error               { return nil }

// BenchmarkRefusedRequest is the gate's own cost of one junk request
// (an unknown agent token, past its address's allowance): authentication,
// the limiters, the count, the answer. No Chron write is on this path.
func BenchmarkRefusedRequest(b *testing.B) {
	s := &Server{Snapshots: oneSnapshot{decide.Build(decide.Inputs{Revision: "1"})}, Log: &memLog{},
		Refusals: &Refusals{Log: &memLog{}, Interval: time.Hour}}
	h := s.Handler()
	body := `{"action":"deploy:staging","skill_version_id":"x"}`
	tok := "Bearer clm_0123456789abcdef_" + strings.Repeat("A", 43)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v/validate", strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusTooManyRequests && rec.Code != http.StatusUnauthorized {
			b.Fatalf("HTTP %d", rec.Code)
		}
	}
}
