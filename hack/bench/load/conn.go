package load

// One connection: dialing, a request's round trip, and reconnecting when
// the server closes a keep-alive connection.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

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

// do sends request i and reads its response, (re)connecting as needed.
func (w *worker) do(i int) (int, error) {
	wr := &w.r.wires[i]
	for {
		if w.conn == nil {
			c, err := dial(w.r.ctx, w.addr)
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
