package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/client"
)

const allow = `{"outcome":"ALLOW","reason":"OWN_AIORG","decision_id":"d-1"}`

var uuid7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// gate is a raw HTTP/1.1 server whose answer to each request is chosen
// by the test: it can read a request and hang up without a word, which
// httptest cannot.
type gate struct {
	ln     net.Listener
	mu     sync.Mutex
	keys   []string // the Idempotency-Key of each request read, in order
	conns  []net.Conn
	answer func(n int) bool
	wg     sync.WaitGroup
}

// newGate serves until the test ends; answer(n) says whether the n-th
// request read (from 1) gets an ALLOW or a closed connection.
func newGate(t *testing.T, answer func(n int) bool) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, answer: answer}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		for _, c := range g.conns { // kept alive by the client
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *gate) url() string { return "http://" + g.ln.Addr().String() + "/v" }

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body) // read it all: the gate has the request
				g.mu.Lock()
				g.keys = append(g.keys, req.Header.Get(api.IdempotencyKeyHeader))
				n := len(g.keys)
				g.mu.Unlock()
				if !g.answer(n) {
					return
				}
				resp := &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(len(allow)),
					Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(allow))}
				if resp.Write(c) != nil {
					return
				}
			}
		}()
	}
}

func (g *gate) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.keys...)
}

// closedAddr is a local address nothing listens on: dialing it is
// refused by the kernel.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestEveryCallSendsItsOwnKey(t *testing.T) {
	g := newGate(t, func(int) bool { return true })
	c := client.New(g.url(), "tok", "sv")
	for range 2 {
		if _, err := c.Validate(context.Background(), "deploy:staging", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Validate(context.Background(), "deploy:staging", nil, client.WithIdempotencyKey("caller-key-1")); err != nil {
		t.Fatal(err)
	}
	keys := g.seen()
	if len(keys) != 3 || !uuid7.MatchString(keys[0]) || !uuid7.MatchString(keys[1]) || keys[0] == keys[1] || keys[2] != "caller-key-1" {
		t.Fatalf("keys sent: %q; want two distinct version 7 UUIDs, then the caller's", keys)
	}
}

// A refused connection is retried with the same key; the request reaches
// the gate once.
func TestRetriesARefusedConnection(t *testing.T) {
	g := newGate(t, func(int) bool { return true })
	refused := closedAddr(t)
	var dials atomic.Int32
	h := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			addr = refused
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	r, err := client.New(g.url(), "tok", "sv").WithHTTPClient(h).Validate(context.Background(), "deploy:staging", nil)
	if err != nil || r.Outcome != api.Allow {
		t.Fatalf("Validate = %v, %v; want the ALLOW of the second try", r, err)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials; want the refused one and one more", n)
	}
	if keys := g.seen(); len(keys) != 1 {
		t.Fatalf("the gate read %d requests; want 1", len(keys))
	}
}

// A gate that is never there is a DENY after three tries, not a hang.
func TestGivesUpAfterThreeRefusals(t *testing.T) {
	refused := closedAddr(t)
	var dials atomic.Int32
	h := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, refused)
	}}}
	_, err := client.New("http://"+refused+"/v", "tok", "sv").WithHTTPClient(h).Validate(context.Background(), "deploy:staging", nil)
	var d *client.Denied
	if !errors.As(err, &d) || d.Reason != api.ReasonUnreachable {
		t.Fatalf("Validate error = %v; want DENY %s", err, api.ReasonUnreachable)
	}
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d dials; want 3", n)
	}
}

// Once the gate may have read the request, this package does not retry:
// the gate read it, hung up, and the answer is DENY. On a fresh connection
// net/http does not either.
func TestNoRetryOnceTheRequestWasRead(t *testing.T) {
	g := newGate(t, func(int) bool { return false })
	_, err := client.New(g.url(), "tok", "sv").Validate(context.Background(), "deploy:staging", nil)
	var d *client.Denied
	if !errors.As(err, &d) || d.Reason != api.ReasonUnreachable {
		t.Fatalf("Validate error = %v; want DENY %s", err, api.ReasonUnreachable)
	}
	if keys := g.seen(); len(keys) != 1 {
		t.Fatalf("the gate read %d requests; want 1", len(keys))
	}
}

// On a kept-alive connection that the gate closes after reading the
// request (a replica shutting down), net/http sends the request again on a
// new connection, because it carries an Idempotency-Key; it carries the
// same key, so the gate decides it once (gate/server's idempotency test).
func TestNetHTTPReplaysAKeyedRequestOnAReusedConnection(t *testing.T) {
	g := newGate(t, func(n int) bool { return n != 2 })
	c := client.New(g.url(), "tok", "sv")
	for i := range 2 {
		if _, err := c.Validate(context.Background(), "deploy:staging", nil); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	keys := g.seen()
	if len(keys) != 3 || keys[1] != keys[2] || keys[0] == keys[1] {
		t.Fatalf("keys read: %q; want the first call's, then the second call's twice", keys)
	}
}

func TestInitIsNotKeyed(t *testing.T) {
	var key atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key.Store(r.Header.Values(api.IdempotencyKeyHeader))
		_, _ = io.WriteString(w, `{"agent":"ns/a"}`)
	}))
	defer hs.Close()
	if _, err := client.New(hs.URL+"/v", "tok", "sv").Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k := key.Load().([]string); len(k) != 0 {
		t.Fatalf("Init sent %s %q; it decides nothing", api.IdempotencyKeyHeader, k)
	}
}
