package console_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/testenv"
)

// closedPort is a local port nothing listens on: one just released.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// beside is the world with a second console, c, in place of its own,
// served until the test ends.
func (w *world) beside(t *testing.T, c *console.Console) *world {
	t.Helper()
	other := *w
	other.console, other.srv = c, httptest.NewTLSServer(c.Handler())
	t.Cleanup(other.srv.Close)
	return &other
}

// awayAPIServer is a client config of the world's apiserver at a port
// nothing answers on.
func (w *world) awayAPIServer(t *testing.T) *rest.Config {
	t.Helper()
	cfg := rest.CopyConfig(w.env.Config)
	cfg.Host = "https://127.0.0.1:" + strconv.Itoa(closedPort(t))
	cfg.Timeout = 5 * time.Second
	return cfg
}

// expect503 checks a refusal: 503, in words saying what is away and what
// to do, never with the person's token.
func expect503(t *testing.T, what string, status int, body string, token string, words ...string) {
	t.Helper()
	if status != http.StatusServiceUnavailable {
		t.Errorf("%s: %d, want 503\n%s", what, status, body)
	}
	for _, want := range words {
		if !strings.Contains(body, want) {
			t.Errorf("%s: the answer lacks %q\n%s", what, want, body)
		}
	}
	if strings.Contains(body, token) {
		t.Errorf("%s: the answer shows the person's token", what)
	}
}

// With Chron's database away, the explorer and the Chron API say so with
// 503 (try again), rather than showing no rows as if there were none.
func TestChronAwayAnswers503(t *testing.T) {
	w := kube(t)
	cfg := w.reader.Config().Copy()
	cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Fallbacks = "127.0.0.1", uint16(closedPort(t)), nil
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	away, err := pgxpool.NewWithConfig(w.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(away.Close)
	o := w.beside(t, &console.Console{Auth: w.console.Auth, Chron: &console.ChronAPI{Pool: away}, Log: logr.Discard()})
	token := w.env.Token(auditorUser)

	status, body := o.login(t, auditorUser).get("/chron")
	expect503(t, "the Chron explorer", status, body, token, "Chron cannot be read now; try again")

	status, raw := o.api(t, auditorUser, "/api/v1/chron/entries")
	var e console.ErrorResponse
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("the Chron API's refusal is not JSON (%v): %s", err, raw)
	}
	expect503(t, "the Chron API", status, string(raw), token)
	if e.Error != "Chron cannot be read now; try again" {
		t.Errorf("the Chron API's refusal: %q", e.Error)
	}
}

// With the apiserver away, logging in says the token could not be
// reviewed (try again); with it gone after login, the console cannot
// tell whose Chron rows a person may read, and says so rather than
// guessing.
func TestAPIServerAwayAnswers503(t *testing.T) {
	w := kube(t)
	token := w.env.Token(auditorUser)

	// Nothing answers: not even the token's review.
	cs, err := kubernetes.NewForConfig(w.awayAPIServer(t))
	if err != nil {
		t.Fatal(err)
	}
	gone := w.beside(t, &console.Console{Log: logr.Discard(), Chron: &console.ChronAPI{Pool: w.reader},
		Auth: &console.Auth{Config: w.awayAPIServer(t), Reviews: cs.AuthenticationV1().TokenReviews(), Scheme: testenv.Scheme(), Orgs: w.console.Auth.Orgs}})
	status, body := (&browser{t: t, w: gone, c: gone.srv.Client(), user: auditorUser}).post("/login",
		url.Values{"token": {token}, "next": {"/chron"}})
	expect503(t, "logging in", status, body, token, "the apiserver could not review the token, try again")
	status, raw := gone.api(t, auditorUser, "/api/v1/chron/entries")
	expect503(t, "the Chron API", status, string(raw), token, "the console cannot tell what you may see now; try again")

	// The token was reviewed; every question asked as the person fails.
	after := w.beside(t, &console.Console{Log: logr.Discard(), Chron: &console.ChronAPI{Pool: w.reader},
		Auth: &console.Auth{Config: w.awayAPIServer(t), Reviews: w.console.Auth.Reviews, Scheme: testenv.Scheme(), Orgs: w.console.Auth.Orgs}})
	status, body = after.login(t, auditorUser).get("/chron")
	expect503(t, "the Chron explorer", status, body, token, "the console cannot tell what you may see now; try again")
	status, raw = after.api(t, auditorUser, "/api/v1/chron/entries")
	expect503(t, "the Chron API", status, string(raw), token, "the console cannot tell what you may see now; try again")
}
