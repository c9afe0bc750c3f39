package server_test

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/claiim/claiim-operator/gate/server"
)

// reviewCounter answers TokenReviews like the apiserver would for a token
// "ns:name" (its ServiceAccount), and counts them.
func reviewCounter(reviews *int) client.Client {
	return fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			tr := obj.(*authenticationv1.TokenReview)
			*reviews++
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{server.Audience},
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + tr.Spec.Token}}
			return nil
		},
	}).Build()
}

func TestTokenReviewCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	reviews := 0
	r := &server.TokenReviewer{Client: reviewCounter(&reviews), MaxSize: 3}
	ask := func(tok string, wantReviews int) {
		t.Helper()
		ns, name, ok, err := r.Review(context.Background(), tok)
		if err != nil || !ok || ns+":"+name != tok {
			t.Fatalf("Review(%q) = %q, %q, %v, %v", tok, ns, name, ok, err)
		}
		if reviews != wantReviews {
			t.Fatalf("after Review(%q): %d TokenReviews, want %d", tok, reviews, wantReviews)
		}
	}
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

func TestTokenReviewCacheExpires(t *testing.T) {
	reviews := 0
	r := &server.TokenReviewer{Client: reviewCounter(&reviews), TTL: 20 * time.Millisecond}
	for range 2 {
		if _, _, ok, err := r.Review(context.Background(), "ns:a"); !ok || err != nil {
			t.Fatalf("Review: %v, %v", ok, err)
		}
	}
	if reviews != 1 {
		t.Fatalf("%d TokenReviews for one token within its TTL, want 1", reviews)
	}
	time.Sleep(40 * time.Millisecond)
	if _, _, _, err := r.Review(context.Background(), "ns:a"); err != nil {
		t.Fatal(err)
	}
	if reviews != 2 {
		t.Fatalf("%d TokenReviews after the TTL, want 2", reviews)
	}
}
