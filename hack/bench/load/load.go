// Package load is a small HTTP/1.1 load generator for the benchmark. It
// drives every server under test (the gate, OPA, a no-op server) with the
// same request mix and the same load, in one of two modes:
//
//   - closed loop (Rate 0): each connection sends its next request as soon as
//     the previous answer arrives, which measures peak throughput;
//   - open loop (Rate > 0): requests are scheduled at a fixed total rate; a
//     request that goes out late because its connection was still waiting
//     for an answer is timed from its intended send time, so a server that
//     stalls is charged for the queue it causes instead of hiding it
//     (coordinated omission). A late timer on an idle connection is the
//     generator's delay: it is counted in Late, not in the latency.
//
// Every latency sample in the measured window is kept and sorted at the end,
// so percentiles are exact rather than read off histogram buckets.
//
// It deliberately does not use net/http's Client. The generator runs pinned
// to one CPU core next to the server under test, so its own per-request cost
// caps what can be measured. Client builds and validates an *http.Request,
// canonicalises and writes headers, does connection-pool bookkeeping and hands
// each response over from a per-connection reader goroutine through channels.
// Here every request is serialised once up front, and each connection is a
// single goroutine that writes those bytes and parses the answer inline with
// http.ReadResponse.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Req is one pre-built request; the generator cycles through a slice of them.
type Req struct {
	Method string      // "POST"; empty means GET
	Path   string      // "/v/validate"; empty means "/"
	Header http.Header // extra headers, e.g. Authorization, Content-Type
	Body   []byte
}

// Options control a Run.
type Options struct {
	Conns    int           // concurrent keep-alive connections (one goroutine each)
	Duration time.Duration // measured duration
	Warmup   time.Duration // run but don't record, before Duration
	// Rate 0: closed loop (each conn sends as fast as it gets answers).
	// >0: open loop at this total requests/s across all conns; a request
	// sent late because its connection was still busy is measured from its
	// intended send time (corrects coordinated omission).
	Rate float64
	// Check, if set, is called with every recorded response (index into
	// reqs, status, body); a non-nil error counts the request as an error
	// (the first few messages are kept in Result.ErrorSamples). It is called
	// concurrently from all connections, and body is only valid during the
	// call.
	Check func(i int, status int, body []byte) error
}

// Result is what a Run measured. Only requests whose (intended) send time is
// after the warmup and whose outcome arrives before the window ends count.
type Result struct {
	Requests                 int64         // responses recorded during Duration (including ones Check rejected)
	Errors                   int64         // transport errors + Check errors (+ connections that failed to open at start)
	Elapsed                  time.Duration // actual measured wall time
	PerSecond                float64       // Requests / Elapsed
	P50, P90, P99, P999, Max time.Duration
	Status                   map[int]int64 // responses by HTTP status
	ErrorSamples             []string      // first few error messages, at most 5
	Offered                  float64       // Rate, or 0 for closed loop
	Late                     int64         // open loop: requests sent more than 1ms after their intended time
	Answered                 int64         // every response read, warmup and stragglers included (what the server answered to us)
}

const (
	lateAfter       = time.Millisecond      // open loop: later than this counts as Late
	minSleep        = 50 * time.Microsecond // open loop: closer than this to the slot, just send
	drainTimeout    = 5 * time.Second       // how long in-flight requests may run past the window
	dialTimeout     = 5 * time.Second
	redialBackoff   = 10 * time.Millisecond // pause after a failed reconnect so a dead server isn't spun on
	maxErrorSamples = 5
	readBufSize     = 16 << 10
	closedLoopCap   = 1 << 14               // initial per-conn sample capacity in closed loop
	maxPresize      = 1 << 22               // cap on the per-conn presize in open loop
	statusArray     = 600                   // statuses below this are counted in an array, not a map
	longAgo         = -365 * 24 * time.Hour // deadline used to abort blocked I/O on cancellation
)

// wire is a Req serialised once and shared read-only by every connection.
type wire struct {
	raw []byte
	req *http.Request // only Method is read by http.ReadResponse (HEAD has no body)
}

func serialize(addr string, r Req) (wire, error) {
	method, path := r.Method, r.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	if strings.ContainsAny(method, " \r\n") || strings.ContainsAny(path, " \r\n") {
		return wire{}, fmt.Errorf("invalid method or path %q %q", method, path)
	}
	host := addr
	if h := r.Header.Get("Host"); h != "" {
		host = h
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, host, len(r.Body))
	// Sorted so the bytes on the wire are the same on every run.
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding":
			continue // we own the framing
		}
		for _, v := range r.Header[k] {
			if strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
				return wire{}, fmt.Errorf("invalid header %q: %q", k, v)
			}
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	return wire{raw: b.Bytes(), req: &http.Request{Method: method}}, nil
}

// runner is the state shared by all connections; it is read-only once the
// workers start, apart from the atomics and the sample list.
type runner struct {
	ctx      context.Context
	addr     string
	wires    []wire
	check    func(int, int, []byte) error
	rate     float64
	nsPerReq float64 // open loop: slot spacing

	start, warmEnd, end time.Time

	slot    atomic.Int64 // open loop: next slot number
	stopped atomic.Bool  // ctx ended; cheaper to poll than ctx.Err

	mu       sync.Mutex
	samples  []string
	nSamples atomic.Int32
}

func (r *runner) sample(err error) {
	if r.nSamples.Load() >= maxErrorSamples {
		return
	}
	r.mu.Lock()
	if len(r.samples) < maxErrorSamples {
		r.samples = append(r.samples, err.Error())
		r.nSamples.Store(int32(len(r.samples)))
	}
	r.mu.Unlock()
}

// Run drives addr ("127.0.0.1:8181", no scheme) with reqs round-robin (each
// connection starts at a different offset so the mix is spread) and returns
// the result. It stops early with an error if ctx ends or no connection can
// be established; on ctx end the partial result is returned with ctx.Err().
func Run(ctx context.Context, addr string, reqs []Req, opts Options) (Result, error) {
	switch {
	case len(reqs) == 0:
		return Result{}, errors.New("load: no requests")
	case opts.Conns <= 0:
		return Result{}, errors.New("load: Conns must be > 0")
	case opts.Duration <= 0:
		return Result{}, errors.New("load: Duration must be > 0")
	case opts.Warmup < 0 || opts.Rate < 0 || math.IsNaN(opts.Rate) || math.IsInf(opts.Rate, 0):
		return Result{}, errors.New("load: invalid Warmup or Rate")
	}
	r := &runner{ctx: ctx, addr: addr, check: opts.Check, rate: opts.Rate}
	r.wires = make([]wire, len(reqs))
	for i, q := range reqs {
		w, err := serialize(addr, q)
		if err != nil {
			return Result{}, fmt.Errorf("load: request %d: %w", i, err)
		}
		r.wires[i] = w
	}
	if r.rate > 0 {
		r.nsPerReq = 1e9 / r.rate
	}

	// Connect everything before the clock starts so connection setup lands
	// in neither the warmup nor the measured window.
	conns := make([]net.Conn, opts.Conns)
	dialErrs := make([]error, opts.Conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], dialErrs[i] = dial(ctx, addr) })
	}
	wg.Wait()
	res := Result{Offered: opts.Rate, Status: map[int]int64{}}
	up := 0
	for i, c := range conns {
		if c != nil {
			up++
			continue
		}
		res.Errors++
		r.sample(dialErrs[i])
	}
	if err := ctx.Err(); err != nil {
		closeAll(conns)
		return res, err
	}
	if up == 0 {
		return res, fmt.Errorf("load: no connection to %s could be established: %w", addr, dialErrs[0])
	}

	r.start = time.Now()
	r.warmEnd = r.start.Add(opts.Warmup)
	r.end = r.warmEnd.Add(opts.Duration)
	unwatch := context.AfterFunc(ctx, func() { r.stopped.Store(true) })
	defer unwatch()

	presize := closedLoopCap
	if r.rate > 0 {
		presize = int(min(r.rate*opts.Duration.Seconds()/float64(up)*1.2+16, maxPresize))
	}
	workers := make([]*worker, 0, up)
	for i, c := range conns {
		if c == nil {
			continue
		}
		w := &worker{
			r:    r,
			next: i % len(r.wires),
			br:   bufio.NewReaderSize(nil, readBufSize),
			lat:  make([]time.Duration, 0, presize),
		}
		w.attach(c)
		workers = append(workers, w)
		wg.Go(w.run)
	}
	wg.Wait()

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
	return res, ctx.Err()
}

// pct is the nearest-rank percentile of sorted samples.
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Go's default, but stated: small requests must not wait on Nagle.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}

// worker is one connection and its goroutine. Everything except r is owned
// by the goroutine, so the hot path takes no locks and touches no shared
// memory beyond the open-loop slot counter.
type worker struct {
	r       *runner
	conn    net.Conn
	unwatch func() bool // deregisters conn's ctx watcher
	br      *bufio.Reader
	body    bytes.Buffer
	timer   *time.Timer
	next    int  // index of the next request in r.wires
	served  int  // responses read on conn; >0 means it is a reused keep-alive conn
	backoff bool // the last reconnect failed

	lat              []time.Duration
	requests, errors int64
	late, answered   int64
	status           [statusArray]int64
	statusOther      map[int]int64
}

func (w *worker) run() {
	defer w.closeConn()
	r := w.r
	for !r.stopped.Load() {
		var from time.Time // latency is measured from here
		late := false
		if r.rate > 0 {
			k := r.slot.Add(1) - 1
			intended := r.start.Add(time.Duration(float64(k) * r.nsPerReq))
			if !intended.Before(r.end) {
				return
			}
			now := time.Now()
			switch d := intended.Sub(now); {
			case d > minSleep:
				if !w.sleep(d) {
					return
				}
				// The connection was idle: a timer that wakes late is the
				// generator's delay, not the server's, so latency starts at
				// the actual send (Late still counts it). Coordinated
				// omission is about a busy connection: the default case.
				from = time.Now()
				late = from.Sub(intended) > lateAfter
			case d > 0:
				// Too close to be worth a timer: send a hair early and
				// measure from the actual send so latency stays honest.
				from = now
			default:
				from, late = intended, -d > lateAfter
			}
		} else {
			from = time.Now()
			if !from.Before(r.end) {
				return
			}
		}

		i := w.next
		if w.next++; w.next == len(r.wires) {
			w.next = 0
		}
		status, err := w.do(i)
		done := time.Now()
		if err == nil {
			w.answered++
		}
		if from.Before(r.warmEnd) || done.After(r.end) || r.stopped.Load() {
			// Warmup, finished after the window, or aborted: not recorded.
		} else if err != nil {
			w.errors++
			r.sample(err)
		} else {
			w.requests++
			w.lat = append(w.lat, done.Sub(from))
			if late {
				w.late++
			}
			if uint(status) < statusArray {
				w.status[status]++
			} else {
				if w.statusOther == nil {
					w.statusOther = map[int]int64{}
				}
				w.statusOther[status]++
			}
			if r.check != nil {
				if cerr := r.check(i, status, w.body.Bytes()); cerr != nil {
					w.errors++
					r.sample(fmt.Errorf("check request %d: %w", i, cerr))
				}
			}
		}
		if w.backoff {
			w.backoff = false
			if !w.sleep(redialBackoff) {
				return
			}
		}
	}
}

// do sends request i and reads its response, (re)connecting as needed.
func (w *worker) do(i int) (int, error) {
	wr := &w.r.wires[i]
	for {
		if w.conn == nil {
			c, err := dial(w.r.ctx, w.r.addr)
			if err != nil {
				w.backoff = true
				return 0, err
			}
			w.attach(c)
		}
		reused := w.served > 0
		status, err := w.roundTrip(wr)
		if err == nil {
			return status, nil
		}
		w.closeConn()
		// A keep-alive connection the server has already dropped fails on
		// first reuse through no fault of this request, so retry once on a
		// fresh connection (as net/http does). A fresh connection is never
		// "reused", which bounds this to one retry.
		var ne net.Error
		if !reused || w.r.stopped.Load() || (errors.As(err, &ne) && ne.Timeout()) {
			return 0, err
		}
	}
}

func (w *worker) roundTrip(wr *wire) (int, error) {
	if _, err := w.conn.Write(wr.raw); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(w.br, wr.req)
	if err != nil {
		return 0, err
	}
	w.body.Reset()
	_, err = w.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	w.served++
	if resp.Close {
		// "Connection: close" (or an HTTP/1.0 answer): the server won't
		// read another request here, so reconnect before the next one.
		w.closeConn()
	}
	return resp.StatusCode, nil
}

// attach makes c the worker's connection. Its deadline bounds in-flight
// requests to drainTimeout past the window, and cancellation forces the
// deadline into the past so blocked reads return at once.
func (w *worker) attach(c net.Conn) {
	w.conn, w.served = c, 0
	w.br.Reset(c)
	_ = c.SetDeadline(w.r.end.Add(drainTimeout))
	w.unwatch = context.AfterFunc(w.r.ctx, func() { _ = c.SetDeadline(time.Now().Add(longAgo)) })
}

func (w *worker) closeConn() {
	if w.conn == nil {
		return
	}
	w.unwatch()
	w.conn.Close()
	w.conn = nil
}

// sleep waits d with a reused timer; false if ctx ended first.
func (w *worker) sleep(d time.Duration) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		// Since Go 1.23 Reset discards any stale tick, so no drain is needed.
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return true
	case <-w.r.ctx.Done():
		return false
	}
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
