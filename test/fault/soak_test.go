package fault

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSoak (SOAK=1, make soak) runs the fault suite's harness for
// SOAK_DURATION (10m) at SOAK_RATE calls/s (default 70% of a peak measured
// at start), a fault every minute cycling through the list (SOAK_FAULTS
// picks some, comma-separated names). Every minute's calls are held to the
// same invariants as TestFaults; the report adds each gate process's
// memory (RSS) and goroutines when it started and when it ended.
func TestSoak(t *testing.T) {
	if os.Getenv("SOAK") == "" {
		t.Skip("the soak runs with SOAK=1 (make soak)")
	}
	duration, err := time.ParseDuration(envOr("SOAK_DURATION", "10m"))
	if err != nil {
		t.Fatalf("SOAK_DURATION: %v", err)
	}
	list := soakFaults(t)
	s := newSystem(t)
	rate, source := 0.0, "SOAK_RATE"
	if v := os.Getenv("SOAK_RATE"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 {
			t.Fatalf("SOAK_RATE=%q: want calls per second", v)
		}
	} else {
		peak := s.peak(t, 5*time.Second, 16)
		rate, source = math.Floor(0.7*peak), fmt.Sprintf("70%% of a measured peak of %.0f/s", peak)
	}
	workers := max(testWorkers, int(math.Ceil(rate/25))) // each worker at most 25 calls/s
	t.Logf("soak: %s at %.0f calls/s (%s), %d workers, a fault a minute", duration, rate, source, workers)

	stats, stopSampling := s.sampleGates()
	start := time.Now()
	for i := 0; time.Since(start) < duration; i++ {
		f := list[i%len(list)]
		until := start.Add(time.Duration(i+1) * time.Minute)
		if end := start.Add(duration); until.After(end) {
			until = end
		}
		s.run(t, fmt.Sprintf("%02d %s", i+1, f.name), f, rate, workers, until)
	}
	t.Run("claiim chron verify", s.chronVerify)
	stopSampling()
	rows := append(s.rows, total(s.rows))
	header := fmt.Sprintf("\nsoak: %s at %.0f calls/s (%s), %d workers\n", time.Since(start).Round(time.Second), rate, source, workers)
	writeTable(t, rows, header, stats.report())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func soakFaults(t *testing.T) []fault {
	all := faults()
	names := os.Getenv("SOAK_FAULTS")
	if names == "" {
		return all
	}
	var out []fault
	for _, n := range strings.Split(names, ",") {
		i := slices.IndexFunc(all, func(f fault) bool { return strings.EqualFold(f.name, strings.TrimSpace(n)) })
		if i < 0 {
			t.Fatalf("SOAK_FAULTS: no fault %q", n)
		}
		out = append(out, all[i])
	}
	return out
}

// peak is the calls per second the gate answers with workers asking back
// to back for d, with the load's mix of agents.
func (s *system) peak(t *testing.T, d time.Duration, workers int) float64 {
	s.ensureServing(t)
	h := httpClient(callTimeout)
	var mu sync.Mutex
	answered := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := range workers {
		a := s.a
		if i%4 == 3 {
			a = s.b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for time.Now().Before(deadline) {
				if c := s.call(a, h); c.outcome != outcomeError {
					n++
				}
			}
			mu.Lock()
			answered += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(answered) / d.Seconds()
}

func total(rows []row) row {
	r := row{fault: "total"}
	for _, x := range rows {
		r.decisions, r.allow, r.deny, r.errors = r.decisions+x.decisions, r.allow+x.allow, r.deny+x.deny, r.errors+x.errors
		r.hangs, r.missing = r.hangs+x.hangs, r.missing+x.missing
		r.recovery, r.slowest = max(r.recovery, x.recovery), max(r.slowest, x.slowest)
	}
	return r
}

// gateSample is one reading of a gate's /metrics.
type gateSample struct {
	at         time.Time
	rss        float64 // bytes
	goroutines float64
}

// gateStats keeps each gate process's first and last reading.
type gateStats struct {
	mu    sync.Mutex
	order []string
	first map[string]gateSample
	last  map[string]gateSample
}

// sampleGates reads every live gate's /metrics every few seconds until
// stopped.
func (s *system) sampleGates() (*gateStats, func()) {
	st := &gateStats{first: map[string]gateSample{}, last: map[string]gateSample{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			for _, g := range s.gateProcs() {
				if sm, err := readMetrics(g.metrics); err == nil {
					st.add(fmt.Sprintf("%s (pid %d)", g.replica, g.cmd.Process.Pid), sm)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return st, func() { close(stop); <-done }
}

func (st *gateStats) add(key string, sm gateSample) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.first[key]; !ok {
		st.first[key] = sm
		st.order = append(st.order, key)
	}
	st.last[key] = sm
}

func (st *gateStats) report() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var b strings.Builder
	b.WriteString("\n| gate process | lived s | RSS MiB first → last | goroutines first → last |\n|---|--:|--:|--:|\n")
	for _, k := range st.order {
		f, l := st.first[k], st.last[k]
		fmt.Fprintf(&b, "| %s | %.0f | %.1f → %.1f | %.0f → %.0f |\n", k, l.at.Sub(f.at).Seconds(), f.rss/(1<<20), l.rss/(1<<20), f.goroutines, l.goroutines)
	}
	return b.String()
}

// readMetrics reads process_resident_memory_bytes and go_goroutines from
// a gate's Prometheus endpoint.
func readMetrics(url string) (gateSample, error) {
	sm := gateSample{at: time.Now()}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return sm, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	seen := 0
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		switch {
		case err != nil:
		case name == "process_resident_memory_bytes":
			sm.rss, seen = v, seen+1
		case name == "go_goroutines":
			sm.goroutines, seen = v, seen+1
		}
	}
	if seen < 2 {
		return sm, fmt.Errorf("%s lacks process_resident_memory_bytes or go_goroutines", url)
	}
	return sm, sc.Err()
}
