package console_test

import (
	"crypto/rand"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/claiim/claiim-operator/test/testenv"
)

// Helpers of the operations pages' tests.

// suffix is a fresh lowercase name part: the world is shared by the
// package's tests, so each names its own objects.
func suffix() string { return strings.ToLower(rand.Text()[:10]) }

// section is the part of body inside <section id="id">, or "".
func section(body, id string) string {
	_, rest, ok := strings.Cut(body, `<section id="`+id+`"`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}

// form is the <form> of body posting to action, up to its end, or "".
func form(body, action string) string {
	i := strings.Index(body, `action="`+action+`"`)
	if i < 0 {
		return ""
	}
	s, _, _ := strings.Cut(body[i:], "</form>")
	return s
}

var hrefOf = regexp.MustCompile(`href="([^"]*)" id="([^"]+)"`)

// link is the URL of the element with id in body, unescaped.
func link(t *testing.T, body, id string) string {
	t.Helper()
	for _, m := range hrefOf.FindAllStringSubmatch(body, -1) {
		if m[2] == id {
			return html.UnescapeString(m[1])
		}
	}
	return ""
}

// serviceAccountAdmin is a new person: a ServiceAccount with the
// claiim-admin role and no PIM session, logged in with its own token.
func (w *world) serviceAccountAdmin(t *testing.T) *browser {
	t.Helper()
	name := "web-ops-" + suffix()
	user := "system:serviceaccount:default:" + name
	if err := w.env.Client.Create(w.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Bind(w.ctx, w.env.Client, user, "claiim-admin"); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(w.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(w.ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for %s: %v", name, err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *w.srv.Client()
	c.Jar = jar
	b := &browser{t: t, w: w, c: &c, user: user}
	if status, body := b.post("/login", url.Values{"token": {tr.Status.Token}}); status != http.StatusOK || !strings.Contains(body, user) {
		t.Fatalf("logging in as %s: %d\n%s", user, status, body)
	}
	return b
}
