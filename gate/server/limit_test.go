package server

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

func TestClientAddrKeysIPv6ByItsSlash64(t *testing.T) {
	for addr, want := range map[string]string{
		"10.1.2.3:5000":                    "10.1.2.3",
		"[::ffff:10.1.2.3]:5000":           "10.1.2.3",
		"[2001:db8:1:2:aaaa::1]:5000":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9%eth0]:5000": "2001:db8:1:2::/64",
		"not an address":                   "not an address",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", addr, got, want)
		}
	}
}

// Failures are charged to the address first; an id's bucket empties only
// through failures with that id; the total bounds them all.
func TestAuthLimiterBuckets(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newAuthLimiter(AuthLimits{PerSource: 1, PerToken: 1, Total: 3}, func() time.Time { return now })
	// Bursts: 2 per address, 2 per id, 6 in total.
	for i, s := range []struct{ source, id, want string }{
		{"a", "", ""}, {"a", "", ""}, {"a", "", limitedBySource},
		{"b", "x", ""}, {"c", "x", ""}, {"d", "x", limitedByToken},
		{"e", "", ""}, {"f", "", ""}, {"g", "", limitedByTotal},
	} {
		if got := l.failed(s.source, s.id); got != s.want {
			t.Fatalf("step %d (%s, %q): %q, want %q", i, s.source, s.id, got, s.want)
		}
	}
	now = now.Add(time.Second) // one more per second for each bucket
	if got := l.failed("a", ""); got != "" {
		t.Fatalf("after a second: %q", got)
	}
}

// The tarpit holds a bounded number of answers; past it, answers go at
// once (and the caller closes their connections).
func TestTarpitIsBounded(t *testing.T) {
	l := newAuthLimiter(AuthLimits{Tarpit: time.Hour, MaxTarpitted: 1}, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan bool)
	go func() { held <- l.hold(ctx) }()
	for l.tarpitted.Load() != 1 {
		runtime.Gosched()
	}
	if l.hold(context.Background()) {
		t.Fatal("a second answer was held past MaxTarpitted")
	}
	cancel() // the request went away: the held answer goes
	if !<-held {
		t.Fatal("the first answer was not held")
	}
}
