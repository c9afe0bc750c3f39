package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
)

// The gate wires a chron.Writer as its Log: it must report stalls.
var _ server.Staller = (*chron.Writer)(nil)

// stallingLog is a Chron log that reports itself wedged or not.
type stallingLog struct{ stalled bool }

func (l *stallingLog) Write(context.Context, *chron.Record) (chron.Row, error) {
	return chron.Row{}, nil
}
func (l *stallingLog) Stalled(time.Time) bool { return l.stalled }

// /health is liveness: it fails only when the Chron writer is wedged, so
// the kubelet restarts a gate that could only fail closed.
func TestHealthReportsAWedgedWriter(t *testing.T) {
	log := &stallingLog{}
	h := (&server.Server{Log: log}).Handler()
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthy writer: %d %s", code, body)
	}
	log.stalled = true
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "restart the gate") {
		t.Fatalf("wedged writer: %d %s, want 503 saying to restart", code, body)
	}
}

// On SIGTERM the gate drains: /ready turns 503 so endpoints drop it, while
// liveness stays ok (a draining gate must not be restarted mid-drain).
func TestDrainTurnsReadyOff(t *testing.T) {
	s := &server.Server{Log: &stallingLog{}}
	h := s.Handler()
	s.Drain()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/ready while draining: %d %s", code, body)
	}
	if code, _ := get("/health"); code != http.StatusOK {
		t.Fatalf("/health while draining: %d, want 200", code)
	}
}
