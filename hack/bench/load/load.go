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
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
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
	// Window, if set, is called with true when the measured window opens
	// (the warmup is over) and with false when it closes, from a goroutine
	// of its own, so that what the server spent in exactly the window can
	// be read (its CPU time). Run returns only after both calls; if ctx
	// ends first, the calls still due are not made.
	Window func(open bool)
	// Addrs, if set, spreads the connections over several servers of the
	// same API, round-robin: connection i goes to Addrs[i%len(Addrs)],
	// and Result.PerAddr counts what each answered. Run's addr is then
	// only the Host header.
	Addrs []string
}

// Result is what a Run measured. Only requests whose (intended) send time is
// after the warmup and whose outcome arrives before the window ends count.
type Result struct {
	Requests                 int64         // responses recorded during Duration (including ones Check rejected)
	Errors                   int64         // transport errors + Check errors (+ connections that failed to open at start)
	Elapsed                  time.Duration // actual measured wall time
	PerSecond                float64       // Requests / Elapsed
	P50, P90, P99, P999, Max time.Duration
	Status                   map[int]int64    // responses by HTTP status
	ErrorSamples             []string         // first few error messages, at most 5
	Offered                  float64          // Rate, or 0 for closed loop
	Late                     int64            // open loop: requests sent more than 1ms after their intended time
	Answered                 int64            // every response read, warmup and stragglers included (what the server answered to us)
	PerAddr                  map[string]int64 // Requests by server address
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

// runner is the state shared by all connections; it is read-only once the
// workers start, apart from the atomics and the sample list.
type runner struct {
	ctx      context.Context
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
	r := &runner{ctx: ctx, check: opts.Check, rate: opts.Rate}
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
	addrs := opts.Addrs
	if len(addrs) == 0 {
		addrs = []string{addr}
	}
	conns := make([]net.Conn, opts.Conns)
	dialErrs := make([]error, opts.Conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], dialErrs[i] = dial(ctx, addrs[i%len(addrs)]) })
	}
	wg.Wait()
	res := Result{Offered: opts.Rate, Status: map[int]int64{}, PerAddr: map[string]int64{}}
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
	windowDone := make(chan struct{})
	go r.window(opts.Window, windowDone)

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
			addr: addrs[i%len(addrs)],
			next: i % len(r.wires),
			br:   bufio.NewReaderSize(nil, readBufSize),
			lat:  make([]time.Duration, 0, presize),
		}
		w.attach(c)
		workers = append(workers, w)
		wg.Go(w.run)
	}
	wg.Wait()
	<-windowDone

	r.collect(&res, workers)
	return res, ctx.Err()
}

// window calls f as the measured window opens and closes, then closes
// done.
func (r *runner) window(f func(bool), done chan<- struct{}) {
	defer close(done)
	if f == nil {
		return
	}
	for i, at := range []time.Time{r.warmEnd, r.end} {
		t := time.NewTimer(time.Until(at))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		f(i == 0)
	}
}
