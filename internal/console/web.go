package console

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

//go:embed web/templates web/static
var webFiles embed.FS

func staticFiles() http.Handler {
	sub, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		panic(err)
	}
	return http.FileServerFS(sub)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"join": strings.Join,
	// navItem is one navigation link, marked current on its own pages.
	"navItem": func(v view, nav, href, label string) navLink {
		return navLink{Href: href, Label: label, Current: v.Nav == nav}
	},
}

type navLink struct {
	Href, Label string
	Current     bool
}

// pages are the parsed templates: each page file with the layout.
var pages = parsePages()

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(webFiles, "web/templates/*.html"))
	names, err := fs.Glob(webFiles, "web/templates/pages/*.html")
	if err != nil {
		panic(err)
	}
	out := make(map[string]*template.Template, len(names))
	for _, n := range names {
		t := template.Must(template.Must(base.Clone()).ParseFS(webFiles, n))
		out[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return out
}

// view is what every page's template gets: the layout's parts and the
// page's own Data.
type view struct {
	Title string
	// Nav is the navigation entry to mark as current.
	Nav  string
	User string
	// Once are secrets shown on this page and never again.
	Once []string
	// Flash says what the last action did; Error why it failed, in the
	// apiserver's or the webhook's words.
	Flash, Error string
	Data         any
}

// render writes page name with v, or a plain 500 if it cannot.
func (c *Console) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.Log.Error(err, "rendering a page", "page", name)
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// page wraps a handler that needs a logged-in person: without a session
// it sends the browser to the login page, and back here after.
func (c *Console) page(h func(w http.ResponseWriter, r *http.Request, s *Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.Auth.Session(r)
		if err != nil {
			if r.Method != http.MethodGet {
				http.Error(w, "log in again: "+err.Error(), http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// newView starts a page's view for s, taking its show-once secrets and
// the flash message the last action left in the URL.
func newView(r *http.Request, s *Session, title, nav string, data any) view {
	return view{Title: title, Nav: nav, User: s.Name(), Once: s.TakeShowOnce(), Flash: r.URL.Query().Get("done"), Data: data}
}

// done sends the browser to to, saying what was done (post/redirect/get).
func done(w http.ResponseWriter, r *http.Request, to, what string) {
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	http.Redirect(w, r, to+sep+"done="+url.QueryEscape(what), http.StatusSeeOther)
}

// apiMessage is err in the words a person can act on: the apiserver's
// message, which carries the admission webhook's refusal as it wrote it.
func apiMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		if st.Message != "" {
			return st.Message
		}
	}
	return err.Error()
}

// safeNext is where a login returns to: a path on this console only;
// by default the Agents page, where the onboarding guide lands.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 2048 {
		return "/agents"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", view{Title: "Log in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

type loginData struct {
	Next string
}

// maxForm bounds a form's body.
const maxForm = 1 << 20

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form is too large or malformed", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	s, id, err := c.Auth.Login(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, ErrUnauthenticated) {
			status = http.StatusServiceUnavailable
		}
		c.render(w, status, "login", view{Title: "Log in", Error: strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": "),
			Data: loginData{Next: next}})
		return
	}
	c.Log.Info("login", "user", s.Name())
	c.Auth.SetCookie(w, id)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.Auth.Logout(r)
	c.Auth.ClearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// registerPages adds the console's pages: the declared world (dashboard,
// AIOrgs, Skills, Policies, CrossOrgGrants and their forms) and the
// operations on it (Agents, PIM, agents' calls held for approval, the
// Chron explorer).
func (c *Console) registerPages(mux *http.ServeMux) {
	c.registerCatalog(mux)
	c.registerOperations(mux)
	c.registerApprovals(mux)
}
