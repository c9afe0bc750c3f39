package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/claiim/claiim-operator/gate/chron"
)

// memLog stores records in memory, or refuses them all while down.
type memLog struct {
	mu   sync.Mutex
	down bool
	rows map[string]chron.Record
}

func (l *memLog) Write(_ context.Context, r *chron.Record) (chron.Row, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return chron.Row{}, errors.New("chron down")
	}
	if l.rows == nil {
		l.rows = map[string]chron.Record{}
	}
	if old, ok := l.rows[r.ID]; ok && old.Message != r.Message {
		return chron.Row{}, chron.ErrConflict
	}
	l.rows[r.ID] = *r
	return chron.Row{Record: *r}, nil
}

// A flush that fails keeps its rows, with their ids and counts, for the
// next one; refusals of the meantime get rows of their own.
func TestRefusalsRetryAFailedFlushWithTheSameRows(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	log := &memLog{down: true}
	r := &Refusals{Log: log, Interval: time.Hour, Now: func() time.Time { return now }}
	r.defaults()
	k := refusalKey{path: "/v/validate", source: "10.0.0.1", cause: causeNoToken, reason: "UNAUTHENTICATED"}
	id := r.count(k, nil)
	r.count(k, nil)
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush with Chron down succeeded")
	}
	log.down = false
	if id2 := r.count(k, nil); id2 == id {
		t.Fatal("a refusal after the flush joined the flushed row")
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(log.rows) != 2 || log.rows[id].Context["count"] != int64(2) {
		t.Fatalf("rows after the retry: %+v", log.rows)
	}
}

// When Chron stays down, the rows kept for a retry are bounded; what is
// given up is counted.
func TestRefusalsKeepABoundedRetry(t *testing.T) {
	log := &memLog{down: true}
	r := &Refusals{Log: log, Interval: time.Hour, MaxKeys: 2, Metrics: NewMetrics(nil)}
	r.defaults()
	for i := range 3 {
		for range 3 {
			r.count(refusalKey{path: "/v/init", source: string(rune('a' + i)), reason: "UNAUTHENTICATED"}, nil)
		}
		_ = r.Flush(context.Background())
	}
	if len(r.retry) != 2 {
		t.Fatalf("%d rows kept for a retry, want 2", len(r.retry))
	}
	if lost := testutil.ToFloat64(r.Metrics.lost); lost != 3 {
		t.Fatalf("%v requests counted as unrecorded, want 3", lost)
	}
	r.mu.Lock()
	r.timer.Stop()
	r.mu.Unlock()
}
