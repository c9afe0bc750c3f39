package load

// What a run measured: the workers' records merged, exact percentiles, and
// the one-line summary.

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// collect merges what the workers recorded into res: counts, statuses,
// the sorted latencies' percentiles and the error samples.
func (r *runner) collect(res *Result, workers []*worker) {
	end := time.Now()
	if end.After(r.end) {
		end = r.end
	}
	res.Elapsed = max(end.Sub(r.warmEnd), 0)
	n := 0
	for _, w := range workers {
		n += len(w.lat)
	}
	all := make([]time.Duration, 0, n)
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Requests += w.requests
		res.PerAddr[w.addr] += w.requests
		res.Errors += w.errors
		res.Late += w.late
		res.Answered += w.answered
		for code, c := range w.status {
			if c > 0 {
				res.Status[code] += c
			}
		}
		for code, c := range w.statusOther {
			res.Status[code] += c
		}
	}
	slices.Sort(all)
	if len(all) > 0 {
		res.P50, res.P90, res.P99, res.P999 = pct(all, 0.50), pct(all, 0.90), pct(all, 0.99), pct(all, 0.999)
		res.Max = all[len(all)-1]
	}
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Requests) / res.Elapsed.Seconds()
	}
	r.mu.Lock()
	res.ErrorSamples = slices.Clone(r.samples)
	r.mu.Unlock()
}

// pct is the nearest-rank percentile of sorted samples.
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Format renders r on one line, e.g.
// "12345 req/s  p50 1.2ms  p99 3.4ms  p99.9 5.0ms  max 9.1ms  errors 0".
func Format(r Result) string {
	s := fmt.Sprintf("%.0f req/s  p50 %s  p99 %s  p99.9 %s  max %s  errors %d",
		r.PerSecond, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P999), fmtDur(r.Max), r.Errors)
	if r.Offered > 0 {
		s += fmt.Sprintf("  offered %.0f/s  late %d", r.Offered, r.Late)
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
