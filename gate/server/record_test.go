package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/gate/server"
)

// failingLog refuses every record with err and keeps the last one.
type failingLog struct {
	err  error
	last *chron.Record
}

func (l *failingLog) Write(_ context.Context, r *chron.Record) (chron.Row, error) {
	l.last = r
	return chron.Row{}, l.err
}

type noSnapshot struct{}

func (noSnapshot) Snapshot() *decide.Snapshot { return nil }
func (noSnapshot) Ready() error               { return errors.New("starting") }

// A decision whose row fails is a DENY, and its record carries the
// correction the writer stores if the row commits after all (the writer's
// side: gate/chron TestCorrectionsWithAFullQueue and the tests beside it).
// A row pre-empted under the decision's id is a DENY that says so.
func TestRecordFailureIsDenyWithItsCorrection(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "could not be recorded in Chron"},
		{fmt.Errorf("chron: batch of 1 records not committed: %w", errors.New("outcome unknown")), "could not be recorded in Chron"},
		{fmt.Errorf("%w (id x)", chron.ErrConflict), "already in Chron with different content"},
	} {
		log := &failingLog{err: tc.err}
		h := (&server.Server{Snapshots: noSnapshot{}, Log: log}).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v/validate", strings.NewReader(`{}`)))
		var resp api.ValidateResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusServiceUnavailable || resp.Outcome != api.Deny || resp.Reason != api.ReasonChronUnavailable || !strings.Contains(resp.Message, tc.want) {
			t.Errorf("%v: %d %+v", tc.err, rec.Code, resp)
		}
		r := log.last
		if r == nil || r.Correction == nil {
			t.Fatalf("%v: the record carries no correction", tc.err)
		}
		fix := r.Correction(*r)
		if fix.ID != "" || fix.Kind != chron.KindDecisionCorrection || fix.Outcome != api.Deny || fix.Reason != api.ReasonChronUnavailable ||
			!strings.Contains(fix.Message, r.ID) || fix.Replica != r.Replica {
			t.Errorf("%v: correction %+v of %s", tc.err, fix, r.ID)
		}
	}
}
