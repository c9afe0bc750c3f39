package chronlease

// The manager's scheduled verify: every Interval it verifies what was
// written since its last clean run (and every FullEvery runs the whole
// log), with the chain keys and the checkpoints. A problem raises a
// metric, a Warning Event and a chron.verify.failed row in the manager's
// own stream, once per distinct problem.

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Defaults of the schedule.
const (
	DefaultVerifyInterval = 5 * time.Minute
	DefaultFullEvery      = 12 // with 5 minutes: a full pass every hour
)

// Log is the manager's Chron writer as the verifier uses it.
type Log interface {
	Write(ctx context.Context, r *chron.Record) (chron.Row, error)
	EventID(parts ...string) string
}

// ReasonTampered is the reason of chron.verify.failed rows.
const ReasonTampered = "CHRON_TAMPERED"

// Verifier is the scheduled verify, a leader-only runnable.
type Verifier struct {
	Pool      *pgxpool.Pool
	Source    Source
	Interval  time.Duration
	FullEvery int
	Log       Log
	Recorder  events.EventRecorder
	// Regarding is the object its Events are about (the manager's stream Lease).
	Regarding func() runtime.Object
	Metrics   *Metrics
	Logger    logr.Logger

	heads    map[string]chron.Verified
	runs     int
	reported map[string]bool
}

// NeedLeaderElection: one replica verifies.
func (v *Verifier) NeedLeaderElection() bool { return true }

// Start verifies at once and then every Interval until ctx ends.
func (v *Verifier) Start(ctx context.Context) error {
	interval := v.Interval
	if interval <= 0 {
		interval = DefaultVerifyInterval
	}
	for {
		if _, err := v.Once(ctx); err != nil && ctx.Err() == nil {
			v.Logger.Error(err, "scheduled Chron verify could not run; retrying at the next interval", "interval", interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Once runs one verification and raises what it finds.
func (v *Verifier) Once(ctx context.Context) ([]chron.Problem, error) {
	full := v.FullEvery
	if full <= 0 {
		full = DefaultFullEvery
	}
	if v.runs%full == 0 {
		v.heads = nil
	}
	v.runs++
	opts, problems, err := v.Source.Options(ctx)
	if err != nil {
		v.Metrics.verified("error", 0, 0)
		return nil, err
	}
	opts.From = v.heads
	rep, err := chron.VerifyWith(ctx, v.Pool, opts)
	if err != nil {
		v.Metrics.verified("error", 0, 0)
		return nil, err
	}
	v.heads = rep.Heads
	seen := map[string]bool{}
	for _, p := range problems {
		seen[p.Stream] = true
	}
	for _, p := range rep.Problems {
		if !seen[p.Stream] {
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		v.Metrics.verified("ok", 0, rep.Unkeyed)
		v.Logger.V(1).Info("Chron verified", "rows", rep.Rows, "streams", rep.Streams, "checkpoints", rep.Checkpoints)
		return nil, nil
	}
	v.Metrics.verified("failed", len(problems), rep.Unkeyed)
	var errs []error
	for _, p := range problems {
		if err := v.raise(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return problems, fmt.Errorf("recording a failed Chron verification: %v", errs)
	}
	return problems, nil
}

// raise reports one problem, once: the row's id is derived from the
// problem, so a restarted manager finding it again adds no second row.
func (v *Verifier) raise(ctx context.Context, p chron.Problem) error {
	what := p.String()
	v.Logger.Error(nil, "Chron failed verification: evidence of tampering; follow docs/security.md, Verifying Chron", "problem", what)
	if v.reported == nil {
		v.reported = map[string]bool{}
	}
	if v.reported[what] {
		return nil
	}
	if v.Recorder != nil && v.Regarding != nil {
		if obj := v.Regarding(); obj != nil {
			v.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "ChronVerifyFailed", "Verify", "%s", truncate(what, 900))
		}
	}
	if v.Log != nil {
		_, err := v.Log.Write(ctx, &chron.Record{
			ID: v.Log.EventID(string(chron.KindVerifyFailed), what), Kind: chron.KindVerifyFailed,
			Action: "chron:verify", Outcome: chron.OutcomeDeny, Reason: ReasonTampered,
			Message: "Chron failed verification: " + what + "; follow docs/security.md, Verifying Chron",
			Context: map[string]any{"stream": p.Stream, "seq": p.Seq, "id": p.ID, "what": p.What},
			Replica: "manager",
		})
		if err != nil {
			return err
		}
	}
	v.reported[what] = true
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
