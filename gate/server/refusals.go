package server

// Requests refused before anyone was authenticated are not decisions: no
// agent acted. Recording each as a row would let anyone fill Chron and the
// writer's queue that real decisions wait in. They are counted instead,
// and each interval becomes one Chron row per (path, client address,
// cause, reason, actor) with the count.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// Refusals aggregates refused unauthenticated requests into Chron rows of
// kind auth.refused. Rows are written when the interval that began with
// the first refusal ends, at most a few at a time, so the writer's queue
// stays free for decisions; call Flush before the writer closes.
type Refusals struct {
	Log      Log
	Replica  string
	Interval time.Duration // default 10s
	// MaxKeys bounds the rows of one interval; refusals beyond it are
	// counted in an overflow row per path, cause and reason (address "*").
	// It also bounds the rows kept for a retry when Chron is down.
	// Default 1000.
	MaxKeys int
	Now     func() time.Time
	Logger  logr.Logger
	Metrics *Metrics

	mu      sync.Mutex
	window  map[refusalKey]*refusal
	retry   []*chron.Record // rows whose write failed, kept with their id
	timer   *time.Timer
	writing sync.Mutex // one flush at a time, in order
}

// refusalKey is what one aggregated row is about.
type refusalKey struct {
	path, source, cause, reason, actor string
}

type refusal struct {
	id          string
	count       int64
	first, last time.Time
	agent       *decide.Agent // whose token id was presented, if known
}

// Causes of a failed authentication, stable in Chron rows.
const (
	causeNoToken      = "no-token"        // no Bearer credential
	causeMalformed    = "malformed-token" // neither an agent token nor a JWT
	causeUnknownToken = "unknown-token"   // an agent token id nobody holds
	causeWrongSecret  = "wrong-secret"    // a real agent's token id, another secret
	causeRefusedToken = "refused-token"   // a real token the gate does not count (docs/security.md)
	causeSARejected   = "sa-rejected"     // TokenReview said no (or another audience)
	causeSAUnbound    = "sa-unbound"      // a ServiceAccount bound to no single agent
	causeReviewFailed = "review-failed"   // TokenReview could not be asked in time
	causeOverflow     = "*"
)

// maxInFlightRefusalRows bounds the aggregated rows waiting in the
// writer's queue at once.
const maxInFlightRefusalRows = 4

func (r *Refusals) defaults() {
	if r.Interval <= 0 {
		r.Interval = 10 * time.Second
	}
	if r.MaxKeys <= 0 {
		r.MaxKeys = 1000
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// count adds one refused request and returns the id of the row that will
// count it.
func (r *Refusals) count(k refusalKey, agent *decide.Agent) string {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.window == nil {
		r.window = map[refusalKey]*refusal{}
	}
	e, ok := r.window[k]
	if !ok && len(r.window) >= r.MaxKeys {
		k.source, k.actor, agent = causeOverflow, "", nil
		e, ok = r.window[k]
	}
	if !ok {
		e = &refusal{id: chron.NewID(), first: now, agent: agent}
		r.window[k] = e
		r.arm()
	}
	e.count++
	e.last = now
	return e.id
}

// arm starts the interval's timer; mu is held.
func (r *Refusals) arm() {
	if r.timer != nil {
		return
	}
	r.timer = time.AfterFunc(r.Interval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.Interval)
		defer cancel()
		if err := r.Flush(ctx); err != nil {
			r.Logger.Error(err, "recording refused requests in Chron failed; retrying next interval")
		}
	})
}

// Flush writes the current interval's rows and any left from a failed
// flush. Rows that fail stay for the next flush, with their ids, so a
// retry stores each at most once.
func (r *Refusals) Flush(ctx context.Context) error {
	r.writing.Lock()
	defer r.writing.Unlock()
	r.mu.Lock()
	now := r.Now()
	recs := r.retry
	for k, e := range r.window {
		recs = append(recs, r.record(k, e, now))
	}
	r.window, r.retry = nil, nil
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.mu.Unlock()

	failed := make([]bool, len(recs))
	var g errgroup.Group
	g.SetLimit(maxInFlightRefusalRows)
	for i, rec := range recs {
		g.Go(func() error {
			_, err := r.Log.Write(ctx, rec)
			failed[i] = err != nil
			return err
		})
	}
	err := g.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rec := range recs {
		if failed[i] {
			r.retry = append(r.retry, rec)
		}
	}
	if over := len(r.retry) - r.MaxKeys; over > 0 {
		// Chron has been down for long: the oldest aggregates are lost,
		// and the metric says how many requests they counted.
		var lost int64
		for _, rec := range r.retry[:over] {
			lost += rec.Context["count"].(int64)
		}
		r.retry = slices.Delete(r.retry, 0, over)
		r.Metrics.refusalsLost(lost)
	}
	if len(r.retry) > 0 {
		r.arm()
	}
	if err != nil {
		return fmt.Errorf("recording refused requests: %w", err)
	}
	return nil
}

func (r *Refusals) record(k refusalKey, e *refusal, now time.Time) *chron.Record {
	from := k.source
	if from == causeOverflow {
		from = "other addresses (more than the interval's row bound)"
	}
	rec := &chron.Record{ID: e.id, Time: now, Kind: chron.KindAuthRefused, Actor: k.actor, Replica: r.Replica,
		Outcome: api.Deny, Reason: k.reason,
		Message: fmt.Sprintf("%d %s to %s from %s refused %s (%s) between %s and %s", e.count, plural(e.count, "request"), k.path, from, k.reason,
			k.cause, e.first.UTC().Format(time.RFC3339Nano), e.last.UTC().Format(time.RFC3339Nano)),
		Context: map[string]any{"path": k.path, "source": k.source, "cause": k.cause, "count": e.count,
			"first": e.first.UTC().Format(time.RFC3339Nano), "last": e.last.UTC().Format(time.RFC3339Nano)}}
	if a := e.agent; a != nil {
		rec.AgentName, rec.AgentNamespace, rec.AgentUID, rec.Org, rec.Anchor = a.Name, a.Namespace, a.UID, a.Org, a.Anchor
	}
	return rec
}

func plural(n int64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
