package chronlease

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of Chron's tamper evidence. A nil *Metrics records nothing.
type Metrics struct {
	publishes       *prometheus.CounterVec
	lastPublish     prometheus.Gauge
	conflicts       prometheus.Counter
	tampers         prometheus.Counter
	verifyRuns      *prometheus.CounterVec
	verifyProblems  prometheus.Gauge
	verifyUnchecked prometheus.Gauge
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claiim_chron_checkpoint_publishes_total",
			Help: "Signed checkpoints published on the stream's Lease, by result (ok, failed)."}, []string{"result"}),
		lastPublish: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claiim_chron_checkpoint_last_published_timestamp_seconds",
			Help: "When the last checkpoint was published; alert when it is older than twice the interval."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "claiim_chron_conflicts_total",
			Help: "Records refused because their id was already stored with other content (pre-empted or forged rows)."}),
		tampers: prometheus.NewCounter(prometheus.CounterOpts{Name: "claiim_chron_tampered_total",
			Help: "Streams a writer refused to continue: they did not match their signed checkpoint."}),
		verifyRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claiim_chron_verify_runs_total",
			Help: "Scheduled verifications of Chron, by result (ok, failed, error)."}, []string{"result"}),
		verifyProblems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claiim_chron_verify_problems",
			Help: "Streams with a problem in the last scheduled verification; anything above 0 is evidence of tampering."}),
		verifyUnchecked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claiim_chron_verify_unkeyed_rows",
			Help: "Rows the last verification checked by their links only, for want of their chain key."}),
	}
	reg.MustRegister(m.publishes, m.lastPublish, m.conflicts, m.tampers, m.verifyRuns, m.verifyProblems, m.verifyUnchecked)
	return m
}

func (m *Metrics) published(at time.Time) {
	if m != nil {
		m.publishes.WithLabelValues("ok").Inc()
		m.lastPublish.Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *Metrics) publishFailed() {
	if m != nil {
		m.publishes.WithLabelValues("failed").Inc()
	}
}

// Conflict counts a record refused with chron.ErrConflict.
func (m *Metrics) Conflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

func (m *Metrics) tampered() {
	if m != nil {
		m.tampers.Inc()
	}
}

func (m *Metrics) verified(result string, problems int, unkeyed int64) {
	if m != nil {
		m.verifyRuns.WithLabelValues(result).Inc()
		if result != "error" {
			m.verifyProblems.Set(float64(problems))
			m.verifyUnchecked.Set(float64(unkeyed))
		}
	}
}
