package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gateclient "github.com/claiim/claiim-operator/gate/client"
)

// callTimeout is the load's client timeout: a call not answered within it
// is a hang. The gate's own bound is its --write-timeout (2 s).
const callTimeout = 5 * time.Second

// creds are what the agent's workload read from its token Secret when it
// (re)started.
type creds struct {
	label       string // "old" (the first release's token) or "new"
	token, svID string
}

// call is one /v/validate as the workload made it.
type call struct {
	creds      string
	gate       string // the base URL asked
	start, end time.Time
	allow      bool
	status     int    // the gate's HTTP status; 0 when no gate answered
	reason     string // of a DENY
	decisionID string // of an ALLOW
	stream     string // the Chron stream of an ALLOW: which gate wrote it
	err        string // no answer from any gate
	hang       bool
}

// load is the agent's workload asking the gate at a fixed rate through a
// "Service" (endpoint) the test repoints when it rolls the gate, with the
// credentials it read at its last restart.
type load struct {
	routing  sync.RWMutex // a call takes its endpoint and counts itself in flight at once
	endpoint string
	inflight map[string]int
	creds    atomic.Pointer[creds]
	mu       sync.Mutex
	calls    []call
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func startLoad(endpoint string, c creds, rate float64, workers int) *load {
	l := &load{stop: make(chan struct{}), inflight: map[string]int{}}
	l.route(endpoint)
	l.restart(c)
	h := httpClient()
	every := time.Duration(float64(time.Second) * float64(workers) / rate)
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				base := l.take()
				c := ask(base, *l.creds.Load(), h)
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.inflight[base]--
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// httpClient is the workload's transport: the Go client's settings with
// the timeout past which a call counts as a hang.
func httpClient() *http.Client {
	return &http.Client{Timeout: callTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// route points the load at a gate, as a Service's endpoints do.
func (l *load) route(base string) {
	l.routing.Lock()
	defer l.routing.Unlock()
	l.endpoint = base
}

// take is a call's endpoint, counted in flight until the call ends.
func (l *load) take() string {
	l.routing.RLock()
	defer l.routing.RUnlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight[l.endpoint]++
	return l.endpoint
}

// drained returns nil once no call is in flight to base: after a route
// elsewhere, the endpoint's removal has reached every client.
func (l *load) drained(base string) func() error {
	return func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := l.inflight[base]; n > 0 {
			return fmt.Errorf("%d calls in flight to %s", n, base)
		}
		return nil
	}
}

// restart is the workload restarted: it reads its Secret again.
func (l *load) restart(c creds) { l.creds.Store(&c) }

// finish stops the load and returns every call it made.
func (l *load) finish() []call {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.snapshot()
}

func (l *load) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]call(nil), l.calls...)
}

// allowedSince returns nil once the load was allowed, with credentials
// label, by an answer that ended after since and was written to a stream
// that from accepts (which gate answered).
func (l *load) allowedSince(since time.Time, label string, from func(stream string) bool) func() error {
	return func() error {
		for _, c := range l.snapshot() {
			if c.allow && c.creds == label && c.end.After(since) && from(c.stream) {
				return nil
			}
		}
		return fmt.Errorf("no ALLOW with the %s token from that gate since %s", label, since.Format(time.StampMilli))
	}
}

// ask asks the gate at base the seed's question once: deploy to staging,
// which the Deploy Bot skill allows.
func ask(base string, cr creds, h *http.Client) call {
	c := call{creds: cr.label, gate: base, start: time.Now()}
	cl := gateclient.New(base+"/v", cr.token, cr.svID).WithHTTPClient(h)
	res, err := cl.Validate(context.Background(), "deploy:staging", map[string]any{"target": "eu-staging-1"})
	c.end = time.Now()
	var d *gateclient.Denied
	switch {
	case err == nil:
		c.allow, c.status, c.decisionID = true, http.StatusOK, res.DecisionID
		c.stream = res.ChronID[:max(0, strings.LastIndex(res.ChronID, "/"))]
	case errors.As(err, &d) && d.Status != 0:
		c.status, c.reason = d.Status, d.Reason
	default:
		c.err = err.Error()
		var ne net.Error
		c.hang = errors.As(err, &ne) && ne.Timeout()
	}
	return c
}
