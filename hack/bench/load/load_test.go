package load

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server starts an httptest.Server and returns its address without scheme,
// which is what Run takes.
func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(b)
}

func post(path, body string) Req {
	return Req{
		Method: http.MethodPost,
		Path:   path,
		Header: http.Header{"Content-Type": {"text/plain"}, "Authorization": {"Bearer x"}},
		Body:   []byte(body),
	}
}

func checkBasic(t *testing.T, res Result) {
	t.Helper()
	t.Log(Format(res))
	if res.Requests <= 0 {
		t.Fatalf("no requests recorded: %+v", res)
	}
	if res.Errors != 0 {
		t.Errorf("errors = %d, samples %q", res.Errors, res.ErrorSamples)
	}
	if got := res.Status[http.StatusOK]; got != res.Requests {
		t.Errorf("status 200 = %d, want Requests %d (%v)", got, res.Requests, res.Status)
	}
	if res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.P999 || res.P999 > res.Max {
		t.Errorf("percentiles out of order: p50 %v p90 %v p99 %v p999 %v max %v", res.P50, res.P90, res.P99, res.P999, res.Max)
	}
	if res.P50 <= 0 {
		t.Errorf("p50 = %v, want > 0", res.P50)
	}
	if res.Elapsed <= 0 || res.PerSecond <= 0 {
		t.Errorf("Elapsed %v PerSecond %v", res.Elapsed, res.PerSecond)
	}
}

func TestClosedLoop(t *testing.T) {
	var bodyOK atomic.Bool
	bodyOK.Store(true)
	addr := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != "hello" || r.Header.Get("Authorization") != "Bearer x" || r.ContentLength != 5 {
			bodyOK.Store(false)
		}
		_, _ = w.Write(b)
	})
	res, err := Run(context.Background(), addr, []Req{post("/v/validate", "hello")},
		Options{Conns: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkBasic(t, res)
	if res.Offered != 0 || res.Late != 0 {
		t.Errorf("closed loop: Offered %v Late %d", res.Offered, res.Late)
	}
	if res.Elapsed != 300*time.Millisecond {
		t.Errorf("Elapsed = %v, want the 300ms window", res.Elapsed)
	}
	if !bodyOK.Load() {
		t.Error("server saw a malformed request")
	}
}

func TestCheckErrors(t *testing.T) {
	addr := server(t, echo)
	reqs := []Req{post("/a", "good"), post("/b", "bad")}
	var mu sync.Mutex
	seen := map[int]string{}
	res, err := Run(context.Background(), addr, reqs, Options{
		Conns:    2,
		Duration: 200 * time.Millisecond,
		Check: func(i, status int, body []byte) error {
			mu.Lock()
			seen[i] = string(body)
			mu.Unlock()
			if string(body) == "bad" {
				return errors.New("got bad")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Format(res))
	if seen[0] != "good" || seen[1] != "bad" {
		t.Errorf("Check saw bodies %v, want index 0 good and 1 bad", seen)
	}
	if res.Errors == 0 || res.Errors > res.Requests {
		t.Errorf("Errors = %d, Requests = %d", res.Errors, res.Requests)
	}
	if n := len(res.ErrorSamples); n == 0 || n > 5 {
		t.Fatalf("ErrorSamples = %q", res.ErrorSamples)
	}
	for _, s := range res.ErrorSamples {
		if !strings.Contains(s, "got bad") {
			t.Errorf("unexpected sample %q", s)
		}
	}
}

func TestMixIsSpread(t *testing.T) {
	var hits [3]atomic.Int64
	addr := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/0":
			hits[0].Add(1)
		case "/1":
			hits[1].Add(1)
		case "/2":
			hits[2].Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
	})
	reqs := []Req{post("/0", "a"), {Path: "/1"}, post("/2", "ccc")}
	res, err := Run(context.Background(), addr, reqs, Options{Conns: 4, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkBasic(t, res)
	for i := range hits {
		if hits[i].Load() == 0 {
			t.Errorf("request %d never reached the server", i)
		}
	}
}

func TestOpenLoop(t *testing.T) {
	addr := server(t, echo)
	const rate, dur = 2000.0, 500 * time.Millisecond
	res, err := Run(context.Background(), addr, []Req{post("/v/validate", "x")},
		Options{Conns: 4, Duration: dur, Warmup: 100 * time.Millisecond, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	checkBasic(t, res)
	want := rate * dur.Seconds()
	if got := float64(res.Requests); got < want*0.5 || got > want*1.5 {
		t.Errorf("Requests = %v, want about %v", got, want)
	}
	if res.Offered != rate {
		t.Errorf("Offered = %v, want %v", res.Offered, rate)
	}
	if !strings.Contains(Format(res), "offered 2000/s") {
		t.Errorf("Format = %q", Format(res))
	}
}

func TestConnectionClose(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		echo(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	res, err := Run(context.Background(), s.Listener.Addr().String(), []Req{post("/", "x")},
		Options{Conns: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkBasic(t, res)
	if conns.Load() < 3 {
		t.Errorf("server saw %d connections; expected reconnects", conns.Load())
	}
}

func TestUnreachable(t *testing.T) {
	// Take a free port, then release it so nothing is listening there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := Run(context.Background(), addr, []Req{post("/", "x")}, Options{Conns: 2, Duration: time.Minute})
	if err == nil {
		t.Fatalf("want error, got %+v", res)
	}
	t.Log(err)
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var block atomic.Bool
	addr := server(t, func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			// Hold the request so Run's cancellation has to abort a
			// blocked read, not just see the flag between requests.
			cancel()
			<-r.Context().Done()
			return
		}
		block.Store(true)
	})
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, addr, []Req{{Path: "/"}}, Options{Conns: 2, Duration: time.Hour})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestInvalid(t *testing.T) {
	addr := server(t, echo)
	for name, tc := range map[string]struct {
		reqs []Req
		opts Options
	}{
		"no reqs":   {nil, Options{Conns: 1, Duration: time.Second}},
		"no conns":  {[]Req{{}}, Options{Duration: time.Second}},
		"no dur":    {[]Req{{}}, Options{Conns: 1}},
		"neg rate":  {[]Req{{}}, Options{Conns: 1, Duration: time.Second, Rate: -1}},
		"bad hdr":   {[]Req{{Header: http.Header{"X": {"a\r\nb"}}}}, Options{Conns: 1, Duration: time.Second}},
		"bad path ": {[]Req{{Path: "/a b"}}, Options{Conns: 1, Duration: time.Second}},
	} {
		if _, err := Run(context.Background(), addr, tc.reqs, tc.opts); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

// TestWindow: the window's calls come in order, once each, around the
// measured requests, and Run returns after both.
func TestWindow(t *testing.T) {
	var served atomic.Int64
	addr := server(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		echo(w, r)
	})
	var calls []bool
	var inWindow int64
	var mu sync.Mutex
	res, err := Run(context.Background(), addr, []Req{post("/", "x")}, Options{Conns: 2, Warmup: 50 * time.Millisecond,
		Duration: 100 * time.Millisecond, Window: func(open bool) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, open)
			if open {
				inWindow = served.Load()
			} else {
				inWindow = served.Load() - inWindow
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || !calls[0] || calls[1] {
		t.Fatalf("window calls %v, want [true false]", calls)
	}
	if inWindow <= 0 || res.Requests <= 0 {
		t.Errorf("the server answered %d requests in the window, the run recorded %d; want both > 0", inWindow, res.Requests)
	}
	if served.Load() <= inWindow {
		t.Errorf("the server answered %d requests in all and %d in the window: the warmup's were counted in", served.Load(), inWindow)
	}
}

// TestSpread: with Addrs the connections go to every server in turn, and
// each server's share is counted.
func TestSpread(t *testing.T) {
	var a, b atomic.Int64
	addrA := server(t, func(w http.ResponseWriter, r *http.Request) { a.Add(1); echo(w, r) })
	addrB := server(t, func(w http.ResponseWriter, r *http.Request) { b.Add(1); echo(w, r) })
	res, err := Run(context.Background(), addrA, []Req{post("/", "x")}, Options{Conns: 4, Duration: 100 * time.Millisecond,
		Addrs: []string{addrA, addrB}})
	if err != nil {
		t.Fatal(err)
	}
	checkBasic(t, res)
	if a.Load() == 0 || b.Load() == 0 {
		t.Fatalf("server A answered %d, server B %d: want both", a.Load(), b.Load())
	}
	if res.PerAddr[addrA] == 0 || res.PerAddr[addrB] == 0 || res.PerAddr[addrA]+res.PerAddr[addrB] != res.Requests {
		t.Errorf("PerAddr %v does not split the %d requests between both servers", res.PerAddr, res.Requests)
	}
}
