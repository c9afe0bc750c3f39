package fault

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	gateclient "github.com/claiim/claiim-operator/gate/client"
)

// Outcomes of a call as the agent saw it.
const (
	outcomeAllow = "ALLOW"
	outcomeDeny  = "DENY"  // the gate answered DENY
	outcomeError = "ERROR" // no answer from the gate (the client denies)
)

// callTimeout is the load's client timeout: a call that gets no answer
// within it is a hang. The gate's bound for any fault is its
// --write-timeout (2 s) for a decision's Chron row; the rest is slack for
// a loaded 2-core machine. It is below the Go client's default (10 s).
const callTimeout = 5 * time.Second

// call is one /v/validate as an agent made it.
type call struct {
	agent      string // "A" or "B"
	start, end time.Time
	outcome    string
	reason     string
	status     int
	decisionID string // of an ALLOW
	stream     string // the Chron stream of an ALLOW: which gate answered
	err        string
	hang       bool // no answer within callTimeout
}

// call asks the gate the load's question once: deploy to staging, which
// the skill allows.
func (s *system) call(a agent, h *http.Client) call {
	c := call{agent: a.label, start: time.Now()}
	cl := gateclient.New(*s.endpoint.Load()+"/v", a.token, a.svID).WithHTTPClient(h)
	res, err := cl.Validate(context.Background(), "deploy:staging", map[string]any{"target": "eu-staging-1"})
	c.end = time.Now()
	var d *gateclient.Denied
	switch {
	case err == nil:
		c.outcome, c.reason, c.status, c.decisionID = outcomeAllow, res.Reason, http.StatusOK, res.DecisionID
		c.stream = res.ChronID[:max(0, strings.LastIndex(res.ChronID, "/"))]
	case errors.As(err, &d) && d.Status != 0:
		c.outcome, c.reason, c.status = outcomeDeny, d.Reason, d.Status
	default:
		c.outcome, c.err = outcomeError, err.Error()
		var ne net.Error
		c.hang = errors.As(err, &ne) && ne.Timeout()
	}
	return c
}

// route points the load at a gate, as a Service's endpoints do.
func (s *system) route(g *gateProc) { s.endpoint.Store(&g.base); s.writeEndpoint(g.base) }

// load is agents A and B asking at a fixed rate, each worker on its own
// ticker, until stopped.
type load struct {
	mu    sync.Mutex
	calls []call
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// startLoad runs workers at rate calls/s in all, three of four as agent A
// (the one whose service must come back), the rest as suspended agent B.
func (s *system) startLoad(rate float64, workers int) *load {
	l := &load{stop: make(chan struct{})}
	h := httpClient(callTimeout)
	every := time.Duration(float64(time.Second) * float64(workers) / rate)
	for i := range workers {
		a := s.a
		if i%4 == 3 {
			a = s.b
		}
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
				c := s.call(a, h)
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

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

// firstAllow is when agent A was first allowed by an answer that ended
// after since (from the gate whose Chron stream is stream, when set).
func firstAllow(calls []call, since time.Time, stream string) (time.Time, bool) {
	var first time.Time
	for _, c := range calls {
		if c.agent != "A" || c.outcome != outcomeAllow || c.end.Before(since) || (stream != "" && c.stream != stream) {
			continue
		}
		if first.IsZero() || c.end.Before(first) {
			first = c.end
		}
	}
	return first, !first.IsZero()
}
