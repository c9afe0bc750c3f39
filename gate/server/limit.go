package server

// Failed authentications are rate limited per client address, per
// presented token id and in total. The limiters are consulted only after
// authentication has failed, so they can refuse nothing that would have
// been allowed: an agent presenting its own token is never slowed down by
// junk that shares its address or carries its token id with a wrong
// secret (docs/security.md, "Abuse and rate limits").

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// AuthLimits bounds failed authentications, in requests per second; each
// limiter's burst is twice its rate. Zero fields take the defaults.
type AuthLimits struct {
	PerSource float64 // per client address (an IPv6 /64); default 10
	PerToken  float64 // per real agent's token id presented with a wrong secret; default 5
	Total     float64 // across all clients; default 1000
	// MaxTracked bounds the addresses and the token ids tracked (each);
	// the least recently seen is forgotten first. Default 10000.
	MaxTracked int
	// Tarpit is how long a RATE_LIMITED answer is held before it is
	// sent: a connection that keeps sending junk gets one answer per
	// Tarpit, at the cost of an idle goroutine, not of CPU. Default 1s;
	// negative: not held.
	Tarpit time.Duration
	// MaxTarpitted bounds the answers held at once; past it an answer
	// goes at once and its connection is closed. Default 4096.
	MaxTarpitted int
}

// Which limiter refused a failed authentication.
const (
	limitedBySource = "source"
	limitedByToken  = "token"
	limitedByTotal  = "total"
)

// idleLimiter is how long an unused per-key limiter is kept. It is far
// longer than a bucket takes to refill, so forgetting it grants nothing
// a patient client would not get anyway.
const idleLimiter = time.Minute

type authLimiter struct {
	lim       AuthLimits
	now       func() time.Time
	sources   *utilcache.LRUExpireCache // client address -> *rate.Limiter
	tokens    *utilcache.LRUExpireCache // token id -> *rate.Limiter
	total     *rate.Limiter
	tarpitted atomic.Int64
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func newAuthLimiter(l AuthLimits, now func() time.Time) *authLimiter {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.PerSource, 10)
	def(&l.PerToken, 5)
	def(&l.Total, 1000)
	if l.MaxTracked <= 0 {
		l.MaxTracked = 10000
	}
	if l.Tarpit == 0 {
		l.Tarpit = time.Second
	}
	if l.MaxTarpitted <= 0 {
		l.MaxTarpitted = 4096
	}
	return &authLimiter{lim: l, now: now,
		sources: utilcache.NewLRUExpireCacheWithClock(l.MaxTracked, clockFunc(now)),
		tokens:  utilcache.NewLRUExpireCacheWithClock(l.MaxTracked, clockFunc(now)),
		total:   newLimiter(l.Total)}
}

func newLimiter(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(2*perSecond)))
}

// failed charges one failed authentication to its client address, the
// token id (when a real agent's id came with a wrong secret) and the total. It returns "" when
// each had room, else which limiter is exhausted: the request is then
// answered 429 RATE_LIMITED instead of 401.
func (l *authLimiter) failed(source, tokenID string) string {
	now := l.now()
	if !l.keyed(l.sources, source, l.lim.PerSource).AllowN(now, 1) {
		return limitedBySource
	}
	if tokenID != "" && !l.keyed(l.tokens, tokenID, l.lim.PerToken).AllowN(now, 1) {
		return limitedByToken
	}
	if !l.total.AllowN(now, 1) {
		return limitedByTotal
	}
	return ""
}

// review charges a TokenReview about to be made for an uncached token to
// its client address (the expensive part of a junk JWT).
func (l *authLimiter) review(source string) string {
	now := l.now()
	if !l.keyed(l.sources, source, l.lim.PerSource).AllowN(now, 1) {
		return limitedBySource
	}
	if !l.total.AllowN(now, 1) {
		return limitedByTotal
	}
	return ""
}

func (l *authLimiter) keyed(c *utilcache.LRUExpireCache, key string, perSecond float64) *rate.Limiter {
	if v, ok := c.Get(key); ok {
		return v.(*rate.Limiter)
	}
	// Two first failures racing may each make a limiter; the later Add
	// wins, and the loser's one charge is forgiven.
	lim := newLimiter(perSecond)
	c.Add(key, lim, idleLimiter)
	return lim
}

// hold delays a RATE_LIMITED answer by the tarpit. It returns false when
// too many are held already: the caller answers at once and closes the
// connection instead.
func (l *authLimiter) hold(ctx context.Context) bool {
	if l.lim.Tarpit < 0 {
		return true
	}
	if l.tarpitted.Add(1) > int64(l.lim.MaxTarpitted) {
		l.tarpitted.Add(-1)
		return false
	}
	defer l.tarpitted.Add(-1)
	t := time.NewTimer(l.lim.Tarpit)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}

// retryAfter is what a refused client is told to wait, in whole seconds.
func (l *authLimiter) retryAfter(by string) int {
	switch by {
	case limitedByToken:
		return max(1, int(1/l.lim.PerToken+0.5))
	case limitedBySource:
		return max(1, int(1/l.lim.PerSource+0.5))
	}
	return 1
}

// clientAddr is the request's source address as the limiter's key: the
// TCP peer, never a forwarding header a client could forge. An IPv6 client
// is keyed by its /64, which one host can cycle through.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return truncate(host, 64)
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
