package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the gate.
type Metrics struct {
	decisions  *prometheus.CounterVec
	latency    prometheus.Histogram
	batchSize  prometheus.Histogram
	commitTime *prometheus.HistogramVec
	refused    *prometheus.CounterVec
	reviews    *prometheus.CounterVec
	lost       prometheus.Counter
}

// NewMetrics registers the gate's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claiim_gate_decisions_total", Help: "Decisions answered, by outcome and reason.",
		}, []string{"outcome", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "claiim_gate_decision_duration_seconds", Help: "Time from request to answer, Chron commit included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "claiim_chron_batch_rows", Help: "Rows per Chron group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		commitTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "claiim_chron_commit_duration_seconds", Help: "Duration of Chron group-commit transactions, by result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claiim_gate_auth_refused_total", Help: "Requests refused before authentication, by reason and cause (Chron holds them aggregated).",
		}, []string{"reason", "cause"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "claiim_gate_token_reviews_total", Help: "ServiceAccount token checks, by result: cached, authenticated, rejected, failed, limited.",
		}, []string{"result"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "claiim_gate_auth_refused_unrecorded_total", Help: "Refused requests whose aggregated Chron row was given up after Chron stayed down.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.latency, m.batchSize, m.commitTime, m.refused, m.reviews, m.lost)
	}
	return m
}

// ObserveCommit is a chron.WriterOptions.OnCommit hook.
func (m *Metrics) ObserveCommit(rows int, took time.Duration, err error) {
	result := "committed"
	if err != nil {
		result = "failed"
	}
	m.batchSize.Observe(float64(rows))
	m.commitTime.WithLabelValues(result).Observe(took.Seconds())
}

func (m *Metrics) observe(outcome, reason string, d time.Duration) {
	m.decisions.WithLabelValues(outcome, reason).Inc()
	m.latency.Observe(d.Seconds())
}

func (m *Metrics) refusal(reason, cause string) { m.refused.WithLabelValues(reason, cause).Inc() }

func (m *Metrics) review(result string) { m.reviews.WithLabelValues(result).Inc() }

// refusalsLost is nil-safe: Refusals may run without metrics.
func (m *Metrics) refusalsLost(n int64) {
	if m != nil {
		m.lost.Add(float64(n))
	}
}
