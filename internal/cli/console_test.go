package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/testenv"
)

func TestConsoleFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	_, err := parseConsoleFlags(nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--database-url") || !strings.Contains(err.Error(), "READER") {
		t.Fatalf("no database URL: got %v, want an error naming --database-url and the reader role", err)
	}
	t.Setenv("DATABASE_URL", "postgres://claiim_reader:pw@db/claiim")
	o, err := parseConsoleFlags([]string{"--audiences", "https://kubernetes.default.svc, claiim,", "--gate-url", "https://gate/v"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != ":3001" || o.idle != 30*time.Minute || o.maxAge != 8*time.Hour || o.dbURL != "postgres://claiim_reader:pw@db/claiim" ||
		strings.Join(o.audiences, "|") != "https://kubernetes.default.svc|claiim" || o.gateURL != "https://gate/v" {
		t.Fatalf("parsed %+v", o)
	}
	for _, args := range [][]string{{"--idle-timeout=0"}, {"--session-max-age=-1h"}, {"--listen"}, {"serve"}} {
		if _, err := parseConsoleFlags(args, io.Discard); err == nil {
			t.Errorf("%v: parsed, want an error", args)
		}
	}
	// Help goes to the pod's log: it must not print the URL's password.
	var help strings.Builder
	if _, err := parseConsoleFlags([]string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "-database-url") ||
		strings.Contains(help.String(), ":pw@") {
		t.Errorf("-h: %v\n%s", err, help.String())
	}
}

// TestConsoleServes runs the console's server as RunConsole does, as the
// console's own identity (ClusterRole claiim-console) against envtest and
// Chron's reader role: probes answer, a person logs in with their own
// token and reads Chron, and neither the token nor the password is logged.
func TestConsoleServes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	const alice, bob = "alice@claiim.io", "bob@claiim.io"
	env := testenv.Setup(t, testenv.Options{Chron: true, Tokens: true,
		RBAC:  []string{"config/rbac/user_roles.yaml", "config/rbac/console_role.yaml"},
		Users: []testenv.User{{Name: alice, ClusterRoles: []string{"claiim-auditor"}}, {Name: bob}}})
	ctx := env.Context()
	self, err := env.AddUser(testenv.User{Name: "system:serviceaccount:claiim-system:claiim-console",
		Groups: []string{"system:serviceaccounts", "system:authenticated"}, ClusterRoles: []string{"claiim-console"}})
	if err != nil {
		t.Fatal(err)
	}

	const password = "console-password-0123456789"
	if err := chron.SetupLogins(ctx, env.Chron, []chron.Login{{Group: chron.ReaderRole, Name: "console_test", Password: password}}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(env.Chron.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("console_test", password)
	w, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "gate/console-test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, &chron.Record{Time: time.Now(), Kind: chron.KindDecision, AgentName: "bot", AgentNamespace: "agents",
		Org: "engineering", Action: "deploy:staging", Outcome: chron.OutcomeAllow, Reason: "OWN_AIORG", Anchor: alice}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	t.Setenv("DATABASE_URL", u.String())
	o, err := parseConsoleFlags([]string{"--chron-namespace="}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var log testenv.Output
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serveConsole(sctx, self, o, ln, zap.New(zap.WriteTo(&log))) }()
	defer func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("the console stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the console did not shut down")
		}
		for _, secret := range []string{env.Token(alice), env.Token(bob), password} {
			if strings.Contains(log.String(), secret) {
				t.Errorf("the console's log holds a secret:\n%s", log.String())
			}
		}
		if t.Failed() {
			t.Logf("console log:\n%s", log.String())
		}
	}()

	base := "http://" + ln.Addr().String()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	do := func(method, path, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	g := gomega.NewWithT(t)
	g.Eventually(func() int { code, _, _ := do("GET", "/readyz", ""); return code }, 30*time.Second, 100*time.Millisecond).
		Should(gomega.Equal(http.StatusOK))
	code, _, _ := do("GET", "/healthz", "")
	g.Expect(code).To(gomega.Equal(http.StatusOK))
	code, _, body := do("GET", "/login", "")
	g.Expect(code).To(gomega.Equal(http.StatusOK), body)

	code, hdr, body := do("POST", "/login", url.Values{"token": {env.Token(alice)}}.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	g.Expect(code).To(gomega.Equal(http.StatusSeeOther), body)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == console.SessionCookie {
			cookie = c
		}
	}
	g.Expect(cookie).NotTo(gomega.BeNil(), "no session cookie: %v", hdr)
	g.Expect(cookie.Secure && cookie.HttpOnly).To(gomega.BeTrue())

	code, _, body = do("GET", "/api/v1/chron/entries", "", "Cookie", cookie.Name+"="+cookie.Value)
	g.Expect(code).To(gomega.Equal(http.StatusOK), body)
	var page console.EntriesResponse
	g.Expect(json.Unmarshal([]byte(body), &page)).To(gomega.Succeed())
	g.Expect(page.Entries).To(gomega.HaveLen(1))
	g.Expect(page.Entries[0].Action).To(gomega.Equal("deploy:staging"))

	// An API caller's own token; one without Chron rights; no token at all.
	code, _, body = do("GET", "/api/v1/chron/entries", "", "Authorization", "Bearer "+env.Token(alice))
	g.Expect(code).To(gomega.Equal(http.StatusOK), body)
	code, _, body = do("GET", "/api/v1/chron/entries", "", "Authorization", "Bearer "+env.Token(bob))
	g.Expect(code).To(gomega.Equal(http.StatusForbidden), body)
	code, _, body = do("GET", "/api/v1/chron/entries", "", "Authorization", "Bearer not-a-real-token")
	g.Expect(code).To(gomega.Equal(http.StatusUnauthorized), body)
}
