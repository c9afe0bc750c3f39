package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/claiim/claiim-operator/internal/console"
)

func TestLoginWithOwnToken(t *testing.T) {
	w := kube(t)
	b := w.login(t, adminUser)
	status, body := b.get("/")
	if status != http.StatusOK || !strings.Contains(body, `<span id="whoami">`+adminUser+`</span>`) {
		t.Fatalf("the dashboard after login: %d\n%s", status, body)
	}
	// The cookie is the session's opaque name, with every guard set.
	u, _ := url.Parse(w.srv.URL)
	cookies := b.c.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != console.SessionCookie || strings.Contains(cookies[0].Value, w.env.Token(adminUser)) {
		t.Fatalf("cookies after login: %v", cookies)
	}
}

func TestLoginRefusesABadToken(t *testing.T) {
	w := kube(t)
	b := &browser{t: t, w: w, c: w.srv.Client(), user: "mallory"}
	for _, tok := range []string{"not-a-token", "", strings.Repeat("x", 20000), "two words"} {
		status, body := b.post("/login", url.Values{"token": {tok}})
		if status != http.StatusUnauthorized || !strings.Contains(body, `class="error"`) {
			t.Errorf("login with %.20q: %d, want 401 with the reason\n%s", tok, status, body)
		}
	}
}

func TestLoginSetsAGuardedCookie(t *testing.T) {
	w := kube(t)
	c := *w.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(w.srv.URL+"/login", url.Values{"token": {w.env.Token(peerUser)}, "next": {"//evil.example/x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/agents" {
		t.Errorf("login redirects to %q (%d); a next outside the console must fall back to /agents", resp.Header.Get("Location"), resp.StatusCode)
	}
	set := resp.Header.Get("Set-Cookie")
	for _, want := range []string{console.SessionCookie + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %q", set, want)
		}
	}
	if strings.Contains(set, "Domain=") {
		t.Errorf("Set-Cookie %q names a domain; __Host- cookies are host-only", set)
	}
}

func TestPagesCarrySecurityHeaders(t *testing.T) {
	w := kube(t)
	b := w.login(t, auditorUser)
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodGet, w.srv.URL+"/", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline or eval'd script", csp)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

func TestCrossOriginFormsAreRefused(t *testing.T) {
	w := kube(t)
	b := w.login(t, adminUser)
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodPost, w.srv.URL+"/logout", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site POST answered %d, want 403", resp.StatusCode)
	}
	// The session survived the forged logout.
	if status, body := b.get("/"); status != http.StatusOK || !strings.Contains(body, adminUser) {
		t.Fatalf("after a refused cross-site logout: %d", status)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	w := kube(t)
	b := w.login(t, adminUser)
	if status, body := b.post("/logout", url.Values{}); status != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("logout: %d", status)
	}
	if _, body := b.get("/"); !strings.Contains(body, `name="token"`) {
		t.Fatalf("after logout, / is not the login page:\n%s", body)
	}
}

// The console's own identity may review tokens and list orgs, nothing
// that would let it act as someone else or read a secret.
func TestConsoleIdentityCannotImpersonate(t *testing.T) {
	w := kube(t)
	c := w.env.As(consoleUser)
	ask := func(ra authorizationv1.ResourceAttributes) bool {
		t.Helper()
		r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}
		if err := c.Create(w.ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "impersonate", Resource: "users"},
		{Verb: "impersonate", Resource: "groups"},
		{Verb: "impersonate", Resource: "serviceaccounts"},
		{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "scopes"},
		{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "uids"},
	} {
		if ask(ra) {
			t.Errorf("the console's identity may impersonate %s", ra.Resource)
		}
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "default"},
		{Verb: "create", Group: "claiim.io", Resource: "pimrequests", Namespace: "default"},
		{Verb: "update", Group: "claiim.io", Resource: "agents", Namespace: "default"},
		{Verb: "get", Group: "claiim.io", Resource: "aiorgs", Subresource: "chron"},
	} {
		if ask(ra) {
			t.Errorf("the console's identity may %s %s/%s", ra.Verb, ra.Resource, ra.Subresource)
		}
	}
	if !ask(authorizationv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"}) {
		t.Error("the console's identity may not review tokens")
	}
}
