package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

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
// gate's latency. Tokens are kept only as SHA-256 keys. The cache is
// bounded and evicts the least recently used answer, so a burst of new
// tokens does not make every known agent pay a review again.
type TokenReviewer struct {
	Client  client.Client
	TTL     time.Duration // default 10s
	MaxSize int           // default 10000

	once  sync.Once
	cache *utilcache.LRUExpireCache // [32]byte -> username, "" when rejected
}

// Review returns the ServiceAccount ("namespace", "name") the token
// authenticates, ok=false when the apiserver rejects it (or its audience),
// and an error when it could not be asked.
func (t *TokenReviewer) Review(ctx context.Context, token string) (ns, name string, ok bool, err error) {
	t.once.Do(func() { t.cache = utilcache.NewLRUExpireCache(t.maxSize()) })
	key := sha256.Sum256([]byte(token))
	v, hit := t.cache.Get(key)
	user, _ := v.(string)
	if !hit {
		tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{Audience}}}
		if err := t.Client.Create(ctx, tr); err != nil {
			return "", "", false, fmt.Errorf("reviewing a ServiceAccount token: %w", err)
		}
		if tr.Status.Authenticated && contains(tr.Status.Audiences, Audience) {
			user = tr.Status.User.Username
		}
		t.cache.Add(key, user, t.ttl())
	}
	rest, isSA := strings.CutPrefix(user, "system:serviceaccount:")
	ns, name, found := strings.Cut(rest, ":")
	if !isSA || !found {
		return "", "", false, nil
	}
	return ns, name, true, nil
}

func (t *TokenReviewer) ttl() time.Duration {
	if t.TTL > 0 {
		return t.TTL
	}
	return 10 * time.Second
}

func (t *TokenReviewer) maxSize() int {
	if t.MaxSize > 0 {
		return t.MaxSize
	}
	return 10000
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
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
