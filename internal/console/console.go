package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// Console is the console component's HTTP handler: the web console's
// pages, login, and the Chron read API, each request acting as the person
// whose session or bearer token it carries.
type Console struct {
	Auth  *Auth
	Chron *ChronAPI
	// GateURL is where agents reach the gate, shown on an agent's page.
	GateURL string
	Log     logr.Logger
	// Now is the clock the PIM pages read phases at (time.Now when nil):
	// a request lapses, and a session ends, at an instant.
	Now func() time.Time
}

func (c *Console) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// csp lets the pages run only the console's own script and style: no
// inline script, nothing from elsewhere, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves everything. State-changing requests from another origin
// are refused (http.CrossOriginProtection: Sec-Fetch-Site, else Origin),
// on top of the SameSite=Strict session cookie.
func (c *Console) Handler() http.Handler {
	if c.Chron.VisibleOrgs == nil {
		c.Chron.VisibleOrgs = c.Auth.VisibleOrgs
	}
	mux := http.NewServeMux()
	c.Chron.Register(mux)
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	c.registerPages(mux)
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			// Pages name people, show tokens once, and carry Chron rows.
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}
