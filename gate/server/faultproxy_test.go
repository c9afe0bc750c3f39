package server_test

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// faultMode is how the fault proxy treats the gate's traffic.
type faultMode int32

const (
	modePass         faultMode = iota
	modeRefuse                 // nothing listens: connections are refused
	modeThrottle               // 429 Too Many Requests to everything
	modeHang                   // connections are accepted and never answered
	modeSilent                 // lists and gets pass; watches get 200 and then nothing, held open
	modeSilentAgents           // as modeSilent for the watch of Agents only; other kinds flow
)

var modeNames = map[faultMode]string{modePass: "pass", modeRefuse: "refuse", modeThrottle: "429",
	modeHang: "hang", modeSilent: "silent watches", modeSilentAgents: "silent Agents watch"}

func (m faultMode) String() string { return modeNames[m] }

// faultProxy is an HTTPS reverse proxy, with its own certificate, in front
// of the envtest apiserver: the gate under test talks to the apiserver
// only through it, and it fails on demand. It authenticates upstream with
// the admin's credentials, so the gate's config needs none.
type faultProxy struct {
	addr     string
	caPEM    []byte
	tls      *tls.Config
	upstream *httputil.ReverseProxy
	mode     atomic.Int32

	mu   sync.Mutex
	srv  *http.Server // while passing, throttling or silencing
	hang net.Listener // while hanging
	held []net.Conn
}

func startFaultProxy(upstream *rest.Config) *faultProxy {
	GinkgoHelper()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	Expect(err).NotTo(HaveOccurred())
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	Expect(err).NotTo(HaveOccurred())
	target, err := url.Parse(upstream.Host)
	Expect(err).NotTo(HaveOccurred())
	rt, err := rest.TransportFor(upstream)
	Expect(err).NotTo(HaveOccurred())
	p := &faultProxy{caPEM: certPEM, tls: &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12},
		upstream: &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
			Transport:     rt,
			FlushInterval: -1, // watch events as they come
			ErrorLog:      quiet(),
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p
}

// config is a rest.Config that reaches the apiserver through the proxy,
// trusting the proxy's certificate, with the upstream's client settings.
func (p *faultProxy) config(upstream *rest.Config) *rest.Config {
	return &rest.Config{Host: "https://" + p.addr, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		QPS: upstream.QPS, Burst: upstream.Burst}
}

// set switches the mode. Entering a fault cuts every open connection, so
// watches that worked must come back through the fault; back to pass,
// connections opened meanwhile stay as they are (a silenced watch stays
// silent until the gate itself gives up on it).
func (p *faultProxy) set(m faultMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := faultMode(p.mode.Swap(int32(m)))
	if m == modePass && p.srv != nil {
		return
	}
	if m == old {
		return
	}
	p.stop()
	switch m {
	case modeRefuse:
	case modeHang:
		ln := p.listen()
		p.hang = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				p.mu.Lock()
				p.held = append(p.held, c)
				p.mu.Unlock()
			}
		}()
	default:
		p.serve(p.listen())
	}
}

func (p *faultProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stop()
}

// stop closes the listener and every connection. Callers hold mu.
func (p *faultProxy) stop() {
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
	if p.hang != nil {
		_ = p.hang.Close()
		p.hang = nil
	}
	for _, c := range p.held {
		_ = c.Close()
	}
	p.held = nil
}

func (p *faultProxy) listen() net.Listener {
	ln, err := net.Listen("tcp", p.addr) // the same port again (SO_REUSEADDR)
	Expect(err).NotTo(HaveOccurred())
	return ln
}

func (p *faultProxy) serve(ln net.Listener) {
	p.srv = &http.Server{Handler: p, ErrorLog: quiet(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(tls.NewListener(ln, p.tls)) }()
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := faultMode(p.mode.Load())
	watch := r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1"
	switch {
	case mode == modeThrottle:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","message":"the fault proxy throttles everything","code":429}`)
		return
	case watch && (mode == modeSilent || mode == modeSilentAgents && strings.HasSuffix(r.URL.Path, "/agents")):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	p.upstream.ServeHTTP(w, r)
}

func quiet() *log.Logger { return log.New(io.Discard, "", 0) }
