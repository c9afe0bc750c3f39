// Package console is the console component: the Chron read API (this
// file and chron*.go) and, later, the web console.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
)

// ChronAPI serves Chron's read API:
//
//	GET /api/v1/chron/entries        a page of rows, newest first: filters, cursor, limit
//	GET /api/v1/chron/entries/{id}   one row, whole
//	GET /api/v1/chron/export         every matching row: format=ndjson|csv
//	GET /api/v1/chron/tail           rows as they commit (server-sent events)
//	GET /api/v1/chron/verify         the hash chains and checkpoints
//
// Filters: org (repeatable; "-" selects rows with no org), agent (NAME or
// NAMESPACE/NAME), namespace, action, outcome, reason, kind, since and
// until (RFC 3339, or a duration ago such as 24h). Pages are in commit
// order (chron.ListPage): a cursor never skips a row that commits late.
type ChronAPI struct {
	// Pool reads Chron as its reader role (SELECT only).
	Pool *pgxpool.Pool
	// VisibleOrgs says which rows the request's user may see: every row
	// (all), or the rows of orgs, and rows with no org when noOrg. An
	// error wrapping ErrUnauthenticated answers 401, ErrForbidden 403,
	// any other 503.
	VisibleOrgs func(r *http.Request) (orgs []string, all, noOrg bool, err error)
	// VerifyOptions gives verify the chain keys and signed checkpoints, and
	// problems found reading them; nil verifies the database alone.
	VerifyOptions func(ctx context.Context) (chron.VerifyOptions, []chron.Problem, error)
	// TailInterval is how often a tail polls (default 500ms);
	// TailLifetime ends a tail, which the browser reopens from its last
	// event, authorized again (default 5m).
	TailInterval, TailLifetime time.Duration
	// MaxStreams bounds exports and tails running at once (default 16).
	MaxStreams int
	Log        logr.Logger

	once      sync.Once
	streams   chan struct{}
	verifying sync.Mutex
}

// Register adds the API's routes to mux.
func (a *ChronAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/chron/entries", a.entries)
	mux.HandleFunc("GET /api/v1/chron/entries/{id}", a.entry)
	mux.HandleFunc("GET /api/v1/chron/export", a.export)
	mux.HandleFunc("GET /api/v1/chron/tail", a.tail)
	mux.HandleFunc("GET /api/v1/chron/verify", a.verify)
}

// Timeouts of one page's query and of one write to a slow client.
const (
	pageTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
)

// EntriesResponse is the body of GET /api/v1/chron/entries. Next, passed
// back as cursor with the same filters, continues the listing; empty after
// its last row. Tail, passed as cursor to the tail, follows the rows that
// commit after this listing; set on the first page.
type EntriesResponse struct {
	Entries []Entry `json:"entries"`
	Next    string  `json:"next"`
	Tail    string  `json:"tail,omitempty"`
}

func (a *ChronAPI) entries(w http.ResponseWriter, r *http.Request) {
	f, ok := a.filter(w, r, entriesParams)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	p, err := chron.ListPage(ctx, a.Pool, f.f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := EntriesResponse{Entries: make([]Entry, len(p.Rows)), Next: p.Next, Tail: p.Tail}
	for i := range p.Rows {
		resp.Entries[i] = NewEntry(&p.Rows[i])
	}
	writeJSON(w, http.StatusOK, resp)
}

// maxIDLen bounds an entry's id in a path (ids are UUIDs).
const maxIDLen = 128

func (a *ChronAPI) entry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLen || strings.IndexFunc(id, func(c rune) bool { return c < 0x21 || c == 0x7f }) >= 0 {
		writeError(w, http.StatusBadRequest, "send an entry id: up to 128 printable characters, as in an entry's id field")
		return
	}
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, "an entry takes no query parameters")
		return
	}
	v, ok := a.visibility(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	row, err := chron.Get(ctx, a.Pool, id)
	if errors.Is(err, chron.ErrNotFound) || err == nil && !v.Shows(row.Org) {
		// The same answer whether the row is absent or hidden.
		writeError(w, http.StatusNotFound, "no entry with this id that you may see")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NewEntry(&row))
}

// filter parses the request's query and narrows it to what its user may
// see. It has answered when ok is false.
func (a *ChronAPI) filter(w http.ResponseWriter, r *http.Request, allowed []string) (req request, ok bool) {
	req, err := parseQuery(r.URL.RawQuery, allowed, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return req, false
	}
	v, ok := a.visibility(w, r)
	if !ok {
		return req, false
	}
	req.f = req.narrow(v)
	return req, true
}

func (a *ChronAPI) visibility(w http.ResponseWriter, r *http.Request) (Visibility, bool) {
	if a.VisibleOrgs == nil {
		writeError(w, http.StatusServiceUnavailable, "the console cannot tell what you may see")
		return Visibility{}, false
	}
	orgs, all, noOrg, err := a.VisibleOrgs(r)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="claiim"`)
		writeError(w, http.StatusUnauthorized, "log in: send your Kubernetes bearer token")
	case errors.Is(err, ErrForbidden):
		msg := "you may not read Chron"
		if why, ok := strings.CutPrefix(err.Error(), ErrForbidden.Error()+": "); ok {
			msg = why
		}
		writeError(w, http.StatusForbidden, msg)
	case err != nil:
		a.Log.Error(err, "Deciding what a user may see of Chron failed; refusing")
		writeError(w, http.StatusServiceUnavailable, "the console cannot tell what you may see now; try again")
	default:
		return Visibility{Orgs: orgs, All: all, NoOrg: noOrg}, true
	}
	return Visibility{}, false
}

// fail answers an error: the caller's mistakes as 400 with what to send,
// the database's as 503 (logged; its text is not the user's business).
func (a *ChronAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.msg)
	case errors.Is(err, chron.ErrCursor):
		writeError(w, http.StatusBadRequest, "cursor: pass back a next or tail value of this API unchanged, with the same filters and order")
	case r.Context().Err() != nil:
		// The client left; nobody reads an answer.
	default:
		a.Log.Error(err, "Reading Chron failed", "path", r.URL.Path)
		writeError(w, http.StatusServiceUnavailable, "Chron cannot be read now; try again")
	}
}

// acquire takes one of MaxStreams slots for a long response, or answers
// 429.
func (a *ChronAPI) acquire(w http.ResponseWriter) (release func(), ok bool) {
	a.once.Do(func() {
		n := a.MaxStreams
		if n <= 0 {
			n = 16
		}
		a.streams = make(chan struct{}, n)
	})
	select {
	case a.streams <- struct{}{}:
		return func() { <-a.streams }, true
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too many exports and tails are running; try again shortly")
		return nil, false
	}
}

// apiHeaders: audit rows are not cached by browsers or proxies, and are
// only what their content type says.
func apiHeaders(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	apiHeaders(w, "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}

// extendWrite gives the next write to a long response its own deadline,
// past the server's WriteTimeout.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
