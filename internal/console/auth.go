package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SessionCookie names the console's session. __Host- makes the browser
// refuse it unless it is Secure, host-only and for path /, so neither a
// sibling domain nor plain http can plant or read it.
const SessionCookie = "__Host-claiim-session"

// Auth logs people in with their own Kubernetes bearer token and keeps
// their sessions. The console never acts as itself for a person: each
// session's client carries the person's token, so RBAC, the PIM webhooks
// and Chron see who really acted, and two-person approval stays two people.
// The console's own identity only reviews tokens (TokenReview).
type Auth struct {
	// Config reaches the apiserver: host and CA, no credentials. A
	// session copies it with the person's token.
	Config *rest.Config
	// Reviews authenticates tokens, as the console's ServiceAccount.
	Reviews authnclient.TokenReviewInterface
	// Scheme knows CLAIIM's kinds and authorization/v1.
	Scheme *runtime.Scheme
	// Orgs lists AIOrgs as the console's own identity: which orgs exist
	// and their parents, never what a person may see (VisibleOrgs).
	Orgs client.Reader
	// Audiences a token must be meant for; empty accepts the apiserver's.
	Audiences []string
	// IdleTimeout ends a session unused this long (default 30m); MaxAge
	// ends any session this old (default 8h), so a revoked token stops
	// working here within MaxAge even if the apiserver still honours it.
	IdleTimeout, MaxAge time.Duration
	// MaxSessions bounds the sessions kept (default 10000); past it the
	// oldest is ended.
	MaxSessions int

	mu       sync.Mutex
	sessions map[[32]byte]*Session // by the cookie value's hash
	bearers  map[[32]byte]*Session // API callers' tokens, by hash, briefly
}

// Session is one logged-in person. Its token never leaves the server.
type Session struct {
	User    authenticationv1.UserInfo
	Created time.Time

	token  string
	client client.Client
	config *rest.Config

	mu       sync.Mutex
	lastSeen time.Time
	access   map[authorizationv1.ResourceAttributes]cachedAccess
	once     []string // secrets to show once (a new agent's token), then forget
}

type cachedAccess struct {
	allowed bool
	reason  string
	until   time.Time
}

// How long an access answer is reused, and how long an API caller's
// reviewed token is, before the apiserver is asked again.
const (
	accessTTL = 15 * time.Second
	bearerTTL = 10 * time.Second
	// maxToken bounds a presented token: an OIDC id token with many
	// groups stays well under it.
	maxToken = 16 << 10
)

// Client reads and writes as the person.
func (s *Session) Client() client.Client { return s.client }

// Config is the person's rest.Config, for clients other than Client.
func (s *Session) Config() *rest.Config { return rest.CopyConfig(s.config) }

// Name is the person's username as the apiserver knows it.
func (s *Session) Name() string { return s.User.Username }

// Allowed asks the apiserver, as the person (SelfSubjectAccessReview),
// whether they may do ra; the reason is the authorizer's, when it gives
// one. Answers are reused for a few seconds.
func (s *Session) Allowed(ctx context.Context, ra authorizationv1.ResourceAttributes) (bool, string, error) {
	now := time.Now()
	s.mu.Lock()
	if c, ok := s.access[ra]; ok && now.Before(c.until) {
		s.mu.Unlock()
		return c.allowed, c.reason, nil
	}
	s.mu.Unlock()
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}
	if err := s.client.Create(ctx, review); err != nil {
		return false, "", fmt.Errorf("asking the apiserver what %s may do: %w", s.Name(), err)
	}
	reason := review.Status.Reason
	if review.Status.EvaluationError != "" && !review.Status.Allowed {
		reason = strings.TrimSpace(reason + " " + review.Status.EvaluationError)
	}
	s.mu.Lock()
	if s.access == nil {
		s.access = map[authorizationv1.ResourceAttributes]cachedAccess{}
	}
	if len(s.access) > 4096 {
		clear(s.access)
	}
	s.access[ra] = cachedAccess{allowed: review.Status.Allowed, reason: reason, until: now.Add(accessTTL)}
	s.mu.Unlock()
	return review.Status.Allowed, reason, nil
}

// ShowOnce keeps a secret to show the person on their next page, once.
func (s *Session) ShowOnce(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.once) < 8 {
		s.once = append(s.once, secret)
	}
}

// TakeShowOnce returns the secrets kept by ShowOnce and forgets them.
func (s *Session) TakeShowOnce() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.once
	s.once = nil
	return out
}

// Login reviews token and, when the apiserver accepts it, starts a
// session for its person. The returned cookie value names the session.
func (a *Auth) Login(ctx context.Context, token string) (*Session, string, error) {
	s, err := a.review(ctx, token)
	if err != nil {
		return nil, "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions == nil {
		a.sessions = map[[32]byte]*Session{}
	}
	a.expireLocked(time.Now())
	if len(a.sessions) >= a.maxSessions() {
		a.evictOldestLocked()
	}
	a.sessions[sha256.Sum256([]byte(id))] = s
	return s, id, nil
}

// Logout ends the request's session, if any.
func (a *Auth) Logout(r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return
	}
	a.mu.Lock()
	delete(a.sessions, sha256.Sum256([]byte(c.Value)))
	a.mu.Unlock()
}

// Session is the request's session: its cookie, or for API clients an
// `Authorization: Bearer` token, reviewed like a login. An error wraps
// ErrUnauthenticated when there is none or it has ended.
func (a *Auth) Session(r *http.Request) (*Session, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
		}
		return a.bearer(r.Context(), strings.TrimSpace(token))
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, fmt.Errorf("%w: log in first", ErrUnauthenticated)
	}
	key := sha256.Sum256([]byte(c.Value))
	now := time.Now()
	a.mu.Lock()
	s, ok := a.sessions[key]
	if ok && a.ended(s, now) {
		delete(a.sessions, key)
		ok = false
	}
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: the session has ended; log in again", ErrUnauthenticated)
	}
	s.mu.Lock()
	s.lastSeen = now
	s.mu.Unlock()
	return s, nil
}

// bearer is the session of an API caller's token, reviewed at most every
// bearerTTL.
func (a *Auth) bearer(ctx context.Context, token string) (*Session, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	if s, ok := a.bearers[key]; ok && now.Sub(s.Created) < bearerTTL {
		a.mu.Unlock()
		return s, nil
	}
	a.mu.Unlock()
	s, err := a.review(ctx, token)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.bearers == nil || len(a.bearers) >= a.maxSessions() {
		a.bearers = map[[32]byte]*Session{}
	}
	a.bearers[key] = s
	a.mu.Unlock()
	return s, nil
}

// review asks the apiserver who token belongs to.
func (a *Auth) review(ctx context.Context, token string) (*Session, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token given", ErrUnauthenticated)
	}
	if len(token) > maxToken || strings.ContainsAny(token, " \t\r\n") {
		return nil, fmt.Errorf("%w: that is not a bearer token", ErrUnauthenticated)
	}
	tr, err := a.Reviews.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("the apiserver could not review the token, try again: %w", err)
	}
	if !tr.Status.Authenticated {
		why := "the apiserver does not accept this token (expired, revoked, or for another cluster)"
		if tr.Status.Error != "" {
			why += ": " + tr.Status.Error
		}
		return nil, fmt.Errorf("%w: %s", ErrUnauthenticated, why)
	}
	cfg := rest.AnonymousClientConfig(a.Config)
	cfg.BearerToken = token
	cfg.UserAgent = "claiim-console"
	c, err := client.New(cfg, client.Options{Scheme: a.Scheme})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &Session{User: tr.Status.User, Created: now, lastSeen: now, token: token, client: c, config: cfg}, nil
}

func (a *Auth) ended(s *Session, now time.Time) bool {
	idle, maxAge := a.IdleTimeout, a.MaxAge
	if idle <= 0 {
		idle = 30 * time.Minute
	}
	if maxAge <= 0 {
		maxAge = 8 * time.Hour
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.lastSeen) > idle || now.Sub(s.Created) > maxAge
}

func (a *Auth) maxSessions() int {
	if a.MaxSessions > 0 {
		return a.MaxSessions
	}
	return 10000
}

func (a *Auth) expireLocked(now time.Time) {
	for k, s := range a.sessions {
		if a.ended(s, now) {
			delete(a.sessions, k)
		}
	}
}

func (a *Auth) evictOldestLocked() {
	var oldest [32]byte
	var at time.Time
	for k, s := range a.sessions {
		if at.IsZero() || s.Created.Before(at) {
			oldest, at = k, s.Created
		}
	}
	delete(a.sessions, oldest)
}

// SetCookie names the session in the response: HttpOnly (no script reads
// it), Secure, SameSite=Strict (no other site's page sends it), for
// MaxAge at most.
func (a *Auth) SetCookie(w http.ResponseWriter, id string) {
	maxAge := a.MaxAge
	if maxAge <= 0 {
		maxAge = 8 * time.Hour
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// ClearCookie removes the session cookie from the browser.
func (a *Auth) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}
