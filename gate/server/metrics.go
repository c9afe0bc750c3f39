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
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.latency, m.batchSize, m.commitTime)
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
