package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/claiim/claiim-operator/gate/server"
)

// reviewCounter answers TokenReviews like the apiserver would for a token
// "ns:name" (its ServiceAccount) and rejects a token starting with "bad",
// and counts them.
func reviewCounter(reviews *int) client.Client {
	var mu sync.Mutex
	return fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			mu.Lock()
			*reviews++
			mu.Unlock()
			if strings.HasPrefix(tr.Spec.Token, "bad") {
				tr.Status = authenticationv1.TokenReviewStatus{Authenticated: false}
				return nil
			}
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{server.Audience},
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + tr.Spec.Token}}
			return nil
		},
	}).Build()
}

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Step(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func reviewAs(t *testing.T, r *server.TokenReviewer, reviews *int, tok string, wantOK bool, wantReviews int) {
	t.Helper()
	ns, name, ok, err := r.Review(context.Background(), tok)
	if err != nil || ok != wantOK || (ok && ns+":"+name != tok) {
		t.Fatalf("Review(%q) = %q, %q, %v, %v; want ok=%v", tok, ns, name, ok, err, wantOK)
	}
	if *reviews != wantReviews {
		t.Fatalf("after Review(%q): %d TokenReviews, want %d", tok, *reviews, wantReviews)
	}
}

func TestTokenReviewCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	reviews := 0
	r := &server.TokenReviewer{Client: reviewCounter(&reviews), MaxSize: 3}
	ask := func(tok string, want int) { t.Helper(); reviewAs(t, r, &reviews, tok, true, want) }
	ask("ns:a", 1)
	ask("ns:b", 2)
	ask("ns:c", 3)
	ask("ns:a", 3) // cached, and now the most recently used
	ask("ns:d", 4) // past the bound: b, the least recently used, goes
	for _, tok := range []string{"ns:a", "ns:c", "ns:d"} {
		ask(tok, 4) // everything recent is still cached
	}
	ask("ns:b", 5)
}

// A flood of rejected tokens fills only the rejected cache: the accepted
// agents' answers stay, and no known agent pays a review again.
func TestTokenReviewRejectedTokensDoNotEvictAccepted(t *testing.T) {
	reviews := 0
	r := &server.TokenReviewer{Client: reviewCounter(&reviews), MaxSize: 2}
	reviewAs(t, r, &reviews, "ns:a", true, 1)
	reviewAs(t, r, &reviews, "ns:b", true, 2)
	for i := range 100 {
		reviewAs(t, r, &reviews, "bad-"+string(rune('A'+i%26))+strings.Repeat("x", i), false, 3+i)
	}
	reviewAs(t, r, &reviews, "ns:a", true, 102)
	reviewAs(t, r, &reviews, "ns:b", true, 102)
	// A rejected token is itself cached: repeating it costs no review.
	reviewAs(t, r, &reviews, "bad-again", false, 103)
	reviewAs(t, r, &reviews, "bad-again", false, 103)
	if _, _, ok, found := r.Cached("bad-again"); ok || !found {
		t.Fatalf("Cached(rejected) = ok %v, found %v; want a cached rejection", ok, found)
	}
}

func TestTokenReviewCacheExpires(t *testing.T) {
	reviews := 0
	c := newClock()
	r := &server.TokenReviewer{Client: reviewCounter(&reviews), TTL: time.Minute, NegativeTTL: 10 * time.Second, Now: c.Now}
	reviewAs(t, r, &reviews, "ns:a", true, 1)
	reviewAs(t, r, &reviews, "bad", false, 2)
	c.Step(30 * time.Second) // past the rejection's TTL, within the acceptance's
	reviewAs(t, r, &reviews, "ns:a", true, 2)
	reviewAs(t, r, &reviews, "bad", false, 3)
	c.Step(31 * time.Second) // past the acceptance's TTL: a revoked token is noticed
	reviewAs(t, r, &reviews, "ns:a", true, 4)
}

// Reviews at once are capped: one more waits for a slot no longer than
// the review's timeout, then fails (the gate answers 503 NOT_READY).
func TestTokenReviewConcurrencyCap(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	cl := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			started <- struct{}{}
			<-release
			tr := obj.(*authenticationv1.TokenReview)
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{server.Audience},
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + tr.Spec.Token}}
			return nil
		},
	}).Build()
	r := &server.TokenReviewer{Client: cl, MaxInFlight: 1, Timeout: 50 * time.Millisecond}
	done := make(chan error, 1)
	go func() { _, _, _, err := r.Review(context.Background(), "ns:slow"); done <- err }()
	<-started
	if _, _, _, err := r.Review(context.Background(), "ns:other"); !errors.Is(err, server.ErrReviewBusy) {
		t.Fatalf("a review beyond the cap: %v, want ErrReviewBusy", err)
	}
	close(release)
	if err := <-done; err != nil { // answered or timed out (50ms): either way it is over
		t.Logf("the review within the cap ended with: %v", err)
	}
	if _, _, _, found := r.Cached("ns:other"); found {
		t.Fatal("a review that never ran was cached")
	}
}
