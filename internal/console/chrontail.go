package console

// GET /api/v1/chron/tail: rows as they commit, as server-sent events.
// Each row is an event "entry" whose data is an Entry and whose id is the
// cursor after it, so a browser's EventSource that reconnects (sending
// Last-Event-ID) resumes exactly there. It starts after cursor (a
// listing's tail, or an id), else at the current horizon: only rows that
// commit from now on. Rows appear once every transaction before them has
// ended (chron.ListPage).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Tail defaults and the interval of keepalives, which also move the
// client's resume point past rows it was not shown.
const (
	defaultTailInterval = 500 * time.Millisecond
	defaultTailLifetime = 5 * time.Minute
	keepaliveInterval   = 15 * time.Second
)

func (a *ChronAPI) tail(w http.ResponseWriter, r *http.Request) {
	req, ok := a.filter(w, r, tailParams)
	if !ok {
		return
	}
	f := req.f
	f.OldestFirst, f.Limit = true, chron.MaxLimit
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		f.After = id // the browser's resume point wins over the URL's start
	}
	release, ok := a.acquire(w)
	if !ok {
		return
	}
	defer release()
	// The first read happens before any byte is sent, so that a bad
	// cursor or a database down get a proper status.
	var p chron.Page
	var err error
	if f.After == "" {
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		f.After, err = chron.Horizon(ctx, a.Pool)
		cancel()
	} else {
		p, err = a.page(r.Context(), f)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}

	interval, lifetime := a.TailInterval, a.TailLifetime
	if interval <= 0 {
		interval = defaultTailInterval
	}
	if lifetime <= 0 {
		lifetime = defaultTailLifetime
	}
	apiHeaders(w, "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // proxies: pass events on as they come
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ev := &sseWriter{w: w, rc: rc}
	ev.printf("retry: 2000\nid: %s\n\n", f.After)

	end := time.After(lifetime)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastSent := time.Now()
	for ev.err == nil {
		for i := range p.Rows {
			data, err := json.Marshal(NewEntry(&p.Rows[i]))
			if err != nil {
				ev.err = err
				break
			}
			ev.printf("id: %s\nevent: entry\ndata: %s\n\n", p.After(i), data)
		}
		if p.Tail != "" {
			f.After = p.Tail
		}
		if len(p.Rows) > 0 {
			lastSent = time.Now()
		} else if time.Since(lastSent) >= keepaliveInterval {
			ev.printf("id: %s\n: keepalive\n\n", f.After)
			lastSent = time.Now()
		}
		ev.flush()
		if p.Next != "" {
			p = chron.Page{} // more at once: read again without waiting
		} else {
			select {
			case <-r.Context().Done():
				return
			case <-end:
				return // the browser reconnects from its last id and is authorized again
			case <-tick.C:
			}
		}
		if p, err = a.page(r.Context(), f); err != nil {
			if r.Context().Err() == nil {
				a.Log.Error(err, "A Chron tail failed; ending it (the client resumes from its last event)")
				ev.printf("event: error\ndata: %s\n\n", quote("Chron cannot be read now; resuming shortly"))
				ev.flush()
			}
			return
		}
	}
}

// sseWriter writes events to a client that may have left, keeping the
// first error.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (s *sseWriter) printf(format string, a ...any) {
	if s.err == nil {
		extendWrite(s.w, writeTimeout)
		_, s.err = fmt.Fprintf(s.w, format, a...)
	}
}

func (s *sseWriter) flush() {
	if s.err == nil {
		s.err = s.rc.Flush()
	}
}
