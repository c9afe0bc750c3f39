package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	authenticationv1 "k8s.io/api/authentication/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/decide"
)

// Audience a projected ServiceAccount token must carry to be accepted.
const Audience = "claiim-gate"

// TokenReviewer verifies projected ServiceAccount tokens with the
// apiserver (TokenReview) and caches answers briefly: an in-cluster agent
// asks before every action, and a review per request would double the
// gate's latency. Tokens are kept only as SHA-256 keys.
//
// Accepted and rejected tokens live in two bounded LRU caches, so a flood
// of junk tokens evicts only other junk, never a known agent's answer.
// Reviews are bounded in time and in number at once; concurrent requests
// with one uncached token share one review.
type TokenReviewer struct {
	Client      client.Client
	TTL         time.Duration // how long an accepted token is trusted without a review; default 10s
	NegativeTTL time.Duration // how long a rejected token stays rejected; default 10s
	MaxSize     int           // entries of each cache; default 10000
	Timeout     time.Duration // of one review, waiting for a slot included; default 2s
	MaxInFlight int           // reviews at once; default 8
	Now         func() time.Time

	once     sync.Once
	accepted *utilcache.LRUExpireCache // [32]byte -> username
	rejected *utilcache.LRUExpireCache // [32]byte -> struct{}
	slots    chan struct{}
	flight   singleflight.Group
}

// ErrReviewBusy means every review slot stayed taken for the review's
// whole timeout.
var ErrReviewBusy = errors.New("too many TokenReviews in flight")

func (t *TokenReviewer) init() {
	t.once.Do(func() {
		now := t.Now
		if now == nil {
			now = time.Now
		}
		size := t.MaxSize
		if size <= 0 {
			size = 10000
		}
		t.accepted = utilcache.NewLRUExpireCacheWithClock(size, clockFunc(now))
		t.rejected = utilcache.NewLRUExpireCacheWithClock(size, clockFunc(now))
		t.slots = make(chan struct{}, cmp.Or(max(t.MaxInFlight, 0), 8))
	})
}

// Cached answers from the caches alone: found=false means a review is
// needed.
func (t *TokenReviewer) Cached(token string) (ns, name string, ok, found bool) {
	t.init()
	key := sha256.Sum256([]byte(token))
	if v, hit := t.accepted.Get(key); hit {
		ns, name, ok = serviceAccount(v.(string))
		return ns, name, ok, true
	}
	if _, hit := t.rejected.Get(key); hit {
		return "", "", false, true
	}
	return "", "", false, false
}

// Review returns the ServiceAccount ("namespace", "name") the token
// authenticates, ok=false when the apiserver rejects it (or its audience),
// and an error when it could not be asked in time. Errors are not cached.
func (t *TokenReviewer) Review(ctx context.Context, token string) (ns, name string, ok bool, err error) {
	if ns, name, ok, found := t.Cached(token); found {
		return ns, name, ok, nil
	}
	key := sha256.Sum256([]byte(token))
	// The review is shared: one caller going away must not cancel it for
	// the others, so it runs on its own deadline.
	v, err, _ := t.flight.Do(string(key[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(t.Timeout, 2*time.Second))
		defer cancel()
		select {
		case t.slots <- struct{}{}:
			defer func() { <-t.slots }()
		case <-rctx.Done():
			return "", ErrReviewBusy
		}
		tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{Audience}}}
		if err := t.Client.Create(rctx, tr); err != nil {
			return "", fmt.Errorf("reviewing a ServiceAccount token: %w", err)
		}
		user := ""
		if tr.Status.Authenticated && slices.Contains(tr.Status.Audiences, Audience) {
			user = tr.Status.User.Username
		}
		if _, _, isSA := serviceAccount(user); isSA {
			t.accepted.Add(key, user, cmp.Or(t.TTL, 10*time.Second))
		} else {
			t.rejected.Add(key, struct{}{}, cmp.Or(t.NegativeTTL, 10*time.Second))
		}
		return user, nil
	})
	if err != nil {
		return "", "", false, err
	}
	ns, name, ok = serviceAccount(v.(string))
	return ns, name, ok, nil
}

// serviceAccount splits "system:serviceaccount:<ns>:<name>".
func serviceAccount(user string) (ns, name string, ok bool) {
	rest, isSA := strings.CutPrefix(user, "system:serviceaccount:")
	ns, name, found := strings.Cut(rest, ":")
	if !isSA || !found || ns == "" || name == "" {
		return "", "", false
	}
	return ns, name, true
}

// agentForServiceAccount maps a reviewed ServiceAccount to its one agent.
func agentForServiceAccount(snap *decide.Snapshot, ns, name string) (*decide.Agent, string) {
	switch agents := snap.AgentsByServiceAccount(ns, name); len(agents) {
	case 0:
		return nil, fmt.Sprintf("ServiceAccount %s/%s is bound to no agent; set spec.serviceAccountName on the Agent", ns, name)
	case 1:
		return agents[0], ""
	default:
		return nil, fmt.Sprintf("ServiceAccount %s/%s is bound to %d agents; bind each agent to its own ServiceAccount", ns, name, len(agents))
	}
}
