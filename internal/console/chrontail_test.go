package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// event is one server-sent event; an id-only block has no name.
type event struct{ id, name, data string }

// tailStream reads a tail's events into a channel until it ends.
type tailStream struct {
	status int
	events chan event
	cancel context.CancelFunc
}

func (e *env) openTail(t *testing.T, user, query string, hdr ...string) *tailStream {
	t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/api/v1/chron/tail?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", user)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed below on an error status, else by the reading goroutine
	if err != nil {
		t.Fatal(err)
	}
	ts := &tailStream{status: resp.StatusCode, events: make(chan event, 10000), cancel: cancel}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(ts.events)
		return ts
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("tail content type %q", ct)
	}
	go func() {
		defer close(ts.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev event
		var fields int
		for sc.Scan() {
			line := sc.Text()
			k, v, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if fields > 0 {
					ts.events <- ev
				}
				ev, fields = event{}, 0
			case strings.HasPrefix(line, ":"): // a comment
			case k == "id":
				ev.id, fields = v, fields+1
			case k == "event":
				ev.name, fields = v, fields+1
			case k == "data":
				ev.data, fields = v, fields+1
			}
		}
	}()
	return ts
}

// entries waits for n entry events and returns their ids and event ids.
func (ts *tailStream) entries(t *testing.T, n int) (ids, eventIDs []string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for len(ids) < n {
		select {
		case ev, ok := <-ts.events:
			if !ok {
				t.Fatalf("the tail ended after %d of %d entries", len(ids), n)
			}
			if ev.name != "entry" {
				continue
			}
			var en Entry
			if err := json.Unmarshal([]byte(ev.data), &en); err != nil || ev.id == "" {
				t.Fatalf("event %+v: %v", ev, err)
			}
			ids, eventIDs = append(ids, en.ID), append(eventIDs, ev.id)
		case <-timeout:
			t.Fatalf("timed out with %d of %d entries", len(ids), n)
		}
	}
	return ids, eventIDs
}

func TestTail(t *testing.T) {
	e := newEnv(t)
	w := e.writer(t, "gate/0")
	eng := e.openTail(t, "eng", "")
	all := e.openTail(t, "admin", "action=deploy:production")
	if eng.status != 200 || all.status != 200 {
		t.Fatalf("tails: %d, %d", eng.status, all.status)
	}
	// Each starts with an id-only block: its resume point before any row.
	for _, ts := range []*tailStream{eng, all} {
		if ev := <-ts.events; ev.id == "" || ev.name != "" {
			t.Fatalf("first block %+v, want an id alone", ev)
		}
	}
	var written, engWritten []string
	for i, org := range []string{"engineering", "sales", "engineering", "", "engineering"} {
		row, err := w.Write(e.ctx, record(i, org))
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, row.ID)
		if org == "engineering" {
			engWritten = append(engWritten, row.ID)
		}
	}
	got, eventIDs := eng.entries(t, 3)
	if strings.Join(got, ",") != strings.Join(engWritten, ",") {
		t.Errorf("eng's tail: %v, want %v", got, engWritten)
	}
	if got, _ := all.entries(t, 5); strings.Join(got, ",") != strings.Join(written, ",") {
		t.Errorf("admin's tail: %v, want %v", got, written)
	}
	// A browser reconnecting after the first event gets the rest.
	eng.cancel()
	again := e.openTail(t, "eng", "cursor=ignored-when-last-event-id-is-sent", "Last-Event-ID", eventIDs[0])
	if got, _ := again.entries(t, 2); strings.Join(got, ",") != strings.Join(engWritten[1:], ",") {
		t.Errorf("resumed tail: %v, want %v", got, engWritten[1:])
	}
	// From a listing's tail: only what commits after it.
	_, tail := e.list(t, "eng", "/api/v1/chron/entries")
	from := e.openTail(t, "eng", "cursor="+tail)
	row, err := w.Write(e.ctx, record(9, "engineering"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := from.entries(t, 1); got[0] != row.ID {
		t.Errorf("tail from a listing: %v, want %s", got, row.ID)
	}

	status, body := e.get(t, "eng", "/api/v1/chron/entries?limit=1")
	var p EntriesResponse
	if status != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatal(status, string(body))
	}
	for _, c := range []struct {
		user, query string
		status      int
	}{
		{"eng", "cursor=" + p.Next, 400}, // a newest-first cursor
		{"eng", "cursor=AAAA", 400},
		{"eng", "limit=5", 400},
		{"", "", 401},
		{"broken", "", 503},
	} {
		if ts := e.openTail(t, c.user, c.query); ts.status != c.status {
			t.Errorf("tail %q as %q: %d, want %d", c.query, c.user, ts.status, c.status)
		}
	}
}

// TestTailLimits: tails end after their lifetime (the browser reconnects
// and is authorized again), and long responses beyond MaxStreams wait
// their turn with 429.
func TestTailLimits(t *testing.T) {
	e := newEnv(t)
	e.api.MaxStreams, e.api.TailLifetime = 1, 300*time.Millisecond
	ts := e.openTail(t, "admin", "")
	if ts.status != 200 {
		t.Fatal(ts.status)
	}
	for _, path := range []string{"/api/v1/chron/tail", "/api/v1/chron/export"} {
		if status, body := e.get(t, "admin", path); status != http.StatusTooManyRequests {
			t.Errorf("%s beyond MaxStreams: %d %s", path, status, body)
		}
	}
	deadline := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ts.events:
		case <-deadline:
			t.Fatal("the tail outlived its lifetime")
		}
	}
	if status, _ := e.get(t, "admin", "/api/v1/chron/export"); status != 200 {
		t.Errorf("export once the tail ended: %d", status)
	}
}
