package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/consoletest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The console against real parts (test/consoletest): each person logs in
// with their own token, as in a browser.
const (
	adminUser   = consoletest.Admin
	peerUser    = consoletest.Peer
	auditorUser = consoletest.Auditor
	engUser     = consoletest.Eng    // reads engineering's Chron only
	nobodyUser  = consoletest.Nobody // authenticated, no role
	consoleUser = consoletest.Console
	// cisoUser is a second approver besides peer, for requests that need two.
	cisoUser = "ciso@claiim.io"
)

// world is the shared control plane and the console serving it.
type world struct {
	env     *testenv.Env
	ctx     context.Context
	console *console.Console
	srv     *httptest.Server
	reader  *pgxpool.Pool
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

// kube starts the shared world on first use; it stops after every test.
func kube(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL; skipped with -short")
	}
	worldOnce.Do(func() {
		var cw *consoletest.World
		if cw, worldErr = consoletest.Launch(consoletest.Options{WhatIf: true,
			Users: []testenv.User{{Name: cisoUser, ClusterRoles: []string{"claiim-approver", "claiim-auditor"}}}}); worldErr != nil {
			return
		}
		console.Cleanups = append(console.Cleanups, func() { _ = cw.Stop() })
		theWorld = &world{env: cw.Env, ctx: cw.Ctx, console: cw.Console, srv: cw.Server, reader: cw.Reader}
	})
	if worldErr != nil {
		t.Fatalf("starting the control plane: %v", worldErr)
	}
	return theWorld
}

// ahead is the same world seen through a second console whose clock runs
// ahead by d: the same apiserver, manager and Chron, later.
func (w *world) ahead(t *testing.T, d time.Duration) *world {
	t.Helper()
	c := *w.console
	c.Now = func() time.Time { return time.Now().Add(d) }
	srv := httptest.NewTLSServer(c.Handler())
	t.Cleanup(srv.Close)
	later := *w
	later.console, later.srv = &c, srv
	return &later
}

// browser is one person's browser: a cookie jar, same-origin requests.
type browser struct {
	t    *testing.T
	w    *world
	c    *http.Client
	user string
}

// login opens a browser for user and logs in with their own token.
func (w *world) login(t *testing.T, user string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *w.srv.Client()
	c.Jar = jar
	b := &browser{t: t, w: w, c: &c, user: user}
	status, body := b.post("/login", url.Values{"token": {w.env.Token(user)}, "next": {"/"}})
	if status != http.StatusOK || !strings.Contains(body, user) {
		t.Fatalf("logging in as %s: %d\n%s", user, status, body)
	}
	return b
}

// get loads path and returns the final status and body (after redirects).
func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil)
}

// post submits a form to path from a page of the console itself.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	return b.do(http.MethodPost, path, form)
}

func (b *browser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.w.ctx, method, b.w.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// What a browser sends for its own pages' forms and links.
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.w.srv.URL)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(out)
}

// eventually is gomega's Eventually with the console tests' patience.
func eventually(t *testing.T, f func(g Gomega)) {
	t.Helper()
	NewWithT(t).Eventually(f).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

var (
	elevated sync.Map // user → their approved PIM request
	orgsOnce sync.Once
)

// elevate gives user an active PIM session, approved by another person.
func (w *world) elevate(t *testing.T, user string) string {
	t.Helper()
	if name, ok := elevated.Load(user); ok {
		return name.(string)
	}
	approver := peerUser
	if user == peerUser {
		approver = adminUser
	}
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "pim-"},
		Spec: claiimv1.PIMRequestSpec{Reason: "console tests: setting up orgs and agents"}}
	if err := w.env.As(user).Create(w.ctx, p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Annotations = map[string]string{claiimv1.AnnotationApprove: "ok"}
	if err := w.env.As(approver).Patch(w.ctx, p, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, func(g Gomega) {
		got := &claiimv1.PIMRequest{}
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(claiimv1.PIMActive))
	})
	elevated.Store(user, p.Name)
	return p.Name
}

// orgs creates the tree engineering ← platform, and sales beside it.
func (w *world) orgs(t *testing.T) {
	t.Helper()
	w.elevate(t, adminUser)
	orgsOnce.Do(func() {
		for _, o := range []*claiimv1.AIOrg{
			{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "platform"}, Spec: claiimv1.AIOrgSpec{Parent: "engineering"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "sales"}},
		} {
			if err := w.env.As(adminUser).Create(w.ctx, o); err != nil {
				t.Fatalf("creating AIOrg %s: %v", o.Name, err)
			}
		}
	})
}
