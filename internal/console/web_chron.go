package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// The Chron explorer: the read API's filters as the page's query, so a
// URL is a shareable search; rows read server-side with the API's parsing
// and narrowing; export and tail links to the API with the same filters.

// chronPageParams: the API's filters, a cursor and a page size.
var chronPageParams = append(slices.Clone(filterParams), "cursor", "limit")

// chronPageLimit is the explorer's page size unless limit says otherwise.
const chronPageLimit = 50

// chronKinds are offered as the kind filter's suggestions.
var chronKinds = []chron.Kind{
	chron.KindDecision, chron.KindDecisionCorrection, chron.KindInit, chron.KindAuthRefused,
	chron.KindAgentLifecycle, chron.KindTokenIssued, chron.KindTokenRevoked, chron.KindTokenRotated, chron.KindTokenRefused,
	chron.KindPIMRequested, chron.KindPIMApproved, chron.KindPIMDenied, chron.KindPIMRevoked, chron.KindPIMExpired,
	chron.KindPIMDeleted, chron.KindPIMRefused,
	chron.KindAdmissionAdmitted, chron.KindAdmissionRefused, chron.KindAdmissionBypassed, chron.KindObjectChanged, chron.KindObjectGap,
	chron.GrantKind(string(claiimv1.GrantActive)), chron.GrantKind(string(claiimv1.GrantExpired)), chron.GrantKind(string(claiimv1.GrantRevoked)),
	chron.KindConflict, chron.KindVerifyFailed,
}

type chronData struct {
	// Form is the query as given, to fill the filters in again.
	Form  url.Values
	Orgs  []orgOption
	Kinds []chron.Kind
	Rows  []entryView
	// Listed: the page read rows (possibly none); false after an error.
	Listed bool
	// More is the next page's URL; Paged says this is not the first,
	// and Newest is the first.
	More, Newest string
	Paged        bool
	// TailURL follows the rows committed after the first page.
	TailURL     string
	NDJSON, CSV string
	Scope       string
}

type orgOption struct {
	Value, Label string
	Selected     bool
}

// entryView is a row with its context as indented JSON.
type entryView struct {
	Entry
	ContextJSON string
}

func newEntryView(r *chron.Row) entryView {
	e := NewEntry(r)
	return entryView{Entry: e, ContextJSON: indentJSON(e.Context)}
}

// indentJSON is v for reading: indented, and with < > & left as they are
// (the template escapes them for HTML; JSON's \u003c would hide them).
func indentJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSpace(b.String())
}

func (c *Console) chron(w http.ResponseWriter, r *http.Request, s *Session) {
	ctx := r.Context()
	q := r.URL.Query()
	d := &chronData{Form: q, Kinds: chronKinds}
	v := newView(r, s, "Chron", "chron", d)
	req, err := parseQuery(r.URL.RawQuery, chronPageParams, time.Now())
	if err != nil {
		c.chronFail(w, "chron", v, err)
		return
	}
	vis, err := c.chronVisibility(ctx, s)
	if err != nil {
		c.chronFail(w, "chron", v, err)
		return
	}
	d.Scope = scopeOf(vis)
	d.Orgs = c.orgOptions(ctx, s, vis, q["org"])
	f := req.narrow(vis)
	if f.Limit == 0 {
		f.Limit = chronPageLimit
	}
	lctx, cancel := context.WithTimeout(ctx, pageTimeout)
	defer cancel()
	p, err := chron.ListPage(lctx, c.Chron.Pool, f)
	if err != nil {
		c.chronFail(w, "chron", v, err)
		return
	}
	d.Listed, d.Paged = true, f.After != ""
	for i := range p.Rows {
		d.Rows = append(d.Rows, newEntryView(&p.Rows[i]))
	}
	page := filterQuery(q)
	if l := q.Get("limit"); l != "" {
		page.Set("limit", l)
	}
	d.Newest = "/chron?" + page.Encode()
	if p.Next != "" {
		page.Set("cursor", p.Next)
		d.More = "/chron?" + page.Encode()
	}
	if p.Tail != "" && !d.Paged {
		tail := filterQuery(q)
		tail.Set("cursor", p.Tail)
		d.TailURL = "/api/v1/chron/tail?" + tail.Encode()
	}
	d.NDJSON, d.CSV = exportLink(q, "ndjson"), exportLink(q, "csv")
	c.render(w, http.StatusOK, "chron", v)
}

// filterQuery is the filters of q that have a value: what export and
// tail take, and what a next page carries.
func filterQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range filterParams {
		for _, val := range q[k] {
			if val != "" {
				out.Add(k, val)
			}
		}
	}
	return out
}

// exportLink exports what the page lists, in format.
func exportLink(q url.Values, format string) string {
	e := filterQuery(q)
	e.Set("format", format)
	return "/api/v1/chron/export?" + e.Encode()
}

// chronVisibility is what s may see of Chron; ErrForbidden when nothing.
// Other errors wrap errVisibility: what cannot be decided is not shown.
func (c *Console) chronVisibility(ctx context.Context, s *Session) (Visibility, error) {
	orgs, all, noOrg, err := c.Auth.ChronOrgs(ctx, s)
	if err != nil && !errors.Is(err, ErrForbidden) {
		return Visibility{}, fmt.Errorf("%w: %w", errVisibility, err)
	}
	return Visibility{Orgs: orgs, All: all, NoOrg: noOrg}, err
}

var errVisibility = errors.New("console: deciding what the user may see of Chron")

func scopeOf(v Visibility) string {
	if v.All {
		return "every org's rows and the control plane's"
	}
	return "rows of " + strings.Join(v.Orgs, ", ") + " (an org's auditors see its descendants too)"
}

// orgOptions are the orgs the person may filter on, and any asked for
// in the URL that they may not see (shown, selected, matching nothing).
func (c *Console) orgOptions(ctx context.Context, s *Session, v Visibility, asked []string) []orgOption {
	names := v.Orgs
	noOrg := v.NoOrg
	if v.All {
		var list claiimv1.AIOrgList
		if err := s.Client().List(ctx, &list); err == nil {
			names = make([]string, 0, len(list.Items))
			for _, o := range list.Items {
				names = append(names, o.Name)
			}
			slices.Sort(names)
		}
	}
	var out []orgOption
	for _, n := range names {
		out = append(out, orgOption{Value: n, Label: n, Selected: slices.Contains(asked, n)})
	}
	if noOrg {
		out = append(out, orgOption{Value: NoOrgParam, Label: "(no org: PIM, admission, tokens)", Selected: slices.Contains(asked, NoOrgParam)})
	}
	for _, a := range nonEmpty(asked) {
		if !slices.ContainsFunc(out, func(o orgOption) bool { return o.Value == a }) {
			out = append(out, orgOption{Value: a, Label: a + " (not yours to see)", Selected: true})
		}
	}
	return out
}

// chronFail renders the explorer with why it shows no rows: the query's
// mistake, the person's lack of access, or Chron being away.
func (c *Console) chronFail(w http.ResponseWriter, page string, v view, err error) {
	var br *badRequest
	status := http.StatusServiceUnavailable
	switch {
	case errors.As(err, &br):
		v.Error, status = br.msg, http.StatusBadRequest
	case errors.Is(err, chron.ErrCursor):
		v.Error, status = "this page's cursor is not one the console made for these filters; start again from the first page", http.StatusBadRequest
	case errors.Is(err, ErrForbidden):
		v.Error, status = forbiddenMessage(err), http.StatusForbidden
	case errors.Is(err, errVisibility):
		c.Log.Error(err, "Deciding what a user may see of Chron failed; refusing")
		v.Error = "the console cannot tell what you may see now; try again"
	default:
		c.Log.Error(err, "The Chron explorer could not read Chron")
		v.Error = "Chron cannot be read now; try again"
	}
	c.render(w, status, page, v)
}

// forbiddenMessage is ErrForbidden's explanation without its prefix.
func forbiddenMessage(err error) string {
	if why, ok := strings.CutPrefix(err.Error(), ErrForbidden.Error()+": "); ok {
		return why
	}
	return "you may not read Chron"
}

type chronEntryData struct {
	Row entryView
}

// chronEntry shows one row whole; a row the person may not see is the
// same 404 as a missing one.
func (c *Console) chronEntry(w http.ResponseWriter, r *http.Request, s *Session) {
	id := r.PathValue("id")
	v := newView(r, s, "Chron row", "chron", nil)
	fail := func(status int, msg string) {
		v.Error = msg
		c.render(w, status, "chronentry", v)
	}
	if id == "" || len(id) > maxIDLen || strings.IndexFunc(id, func(c rune) bool { return c < 0x21 || c == 0x7f }) >= 0 {
		fail(http.StatusBadRequest, "a Chron row's id is up to 128 printable characters")
		return
	}
	vis, err := c.chronVisibility(r.Context(), s)
	if err != nil {
		c.chronFail(w, "chronentry", v, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	row, err := chron.Get(ctx, c.Chron.Pool, id)
	switch {
	case errors.Is(err, chron.ErrNotFound) || err == nil && !vis.Shows(row.Org):
		fail(http.StatusNotFound, "no Chron row with this id that you may see")
	case err != nil:
		c.chronFail(w, "chronentry", v, err)
	default:
		v.Data = chronEntryData{Row: newEntryView(&row)}
		c.render(w, http.StatusOK, "chronentry", v)
	}
}
