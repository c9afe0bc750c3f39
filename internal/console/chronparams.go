package console

// Query parameters of the Chron read API, each bounded, and the request's
// filter narrowed to what its user may see.

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Bounds of a request.
const (
	maxQueryLen = 8 << 10
	maxValueLen = 253 // a Kubernetes name; actions and reasons fit too
	maxOrgs     = 100
	// NoOrgParam as an org value selects rows without an org (PIM,
	// admission, tokens): no AIOrg can be named "-".
	NoOrgParam = "-"
)

// Parameters each endpoint takes besides the filters.
var (
	filterParams  = []string{"org", "agent", "namespace", "action", "outcome", "reason", "kind", "since", "until"}
	entriesParams = append(slices.Clone(filterParams), "order", "cursor", "limit")
	exportParams  = append(slices.Clone(filterParams), "order", "cursor", "format")
	tailParams    = append(slices.Clone(filterParams), "cursor")
)

// badRequest is a 400 whose message says what to send instead.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, a ...any) error { return &badRequest{msg: fmt.Sprintf(format, a...)} }

// request is a parsed query: the filter as the user asked, before
// visibility, and the orgs asked for (nil: none named).
type request struct {
	f      chron.Filter
	orgs   []string
	noOrg  bool
	order  string // as given: "", newest or oldest
	format string
}

// parseQuery reads raw against the parameters allowed. now anchors
// relative times ("since=1h").
func parseQuery(raw string, allowed []string, now time.Time) (request, error) {
	var req request
	if len(raw) > maxQueryLen {
		return req, bad("the query has %d bytes; send at most %d", len(raw), maxQueryLen)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return req, bad("the query is not URL-encoded: %v", err)
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return req, bad("unknown parameter %q; this endpoint takes %s", k, strings.Join(allowed, ", "))
		}
		if k != "org" && len(vs) > 1 {
			return req, bad("parameter %q is given %d times; give it once", k, len(vs))
		}
		for _, v := range vs {
			if k != "cursor" && len(v) > maxValueLen {
				return req, bad("parameter %q is %d bytes long; at most %d", k, len(v), maxValueLen)
			}
		}
	}
	f := &req.f
	if vs := nonEmpty(q["org"]); len(vs) > 0 {
		if len(vs) > maxOrgs {
			return req, bad("%d org parameters; give at most %d", len(vs), maxOrgs)
		}
		req.orgs = []string{}
		for _, o := range vs {
			if o == NoOrgParam {
				req.noOrg = true
			} else {
				req.orgs = append(req.orgs, o)
			}
		}
	}
	f.Agent, f.Namespace = q.Get("agent"), q.Get("namespace")
	if ns, name, ok := strings.Cut(f.Agent, "/"); ok {
		if f.Namespace != "" && f.Namespace != ns {
			return req, bad("agent %q names namespace %q but namespace is %q; give one", f.Agent, ns, f.Namespace)
		}
		f.Namespace, f.Agent = ns, name
	}
	f.Action, f.Reason, f.Kind = q.Get("action"), q.Get("reason"), q.Get("kind")
	switch o := strings.ToUpper(q.Get("outcome")); o {
	case "", chron.OutcomeAllow, chron.OutcomeDeny:
		f.Outcome = o
	default:
		return req, bad("outcome %q: send ALLOW or DENY", q.Get("outcome"))
	}
	if f.Since, err = parseTime("since", q.Get("since"), now); err != nil {
		return req, err
	}
	if f.Until, err = parseTime("until", q.Get("until"), now); err != nil {
		return req, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return req, bad("since (%s) must be before until (%s)", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	req.order = q.Get("order")
	switch req.order {
	case "", "newest":
	case "oldest":
		f.OldestFirst = true
	default:
		return req, bad("order %q: send newest (the default) or oldest", q.Get("order"))
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > chron.MaxLimit {
			return req, bad("limit %q: send a whole number from 1 to %d (default %d)", l, chron.MaxLimit, chron.DefaultLimit)
		}
		f.Limit = n
	}
	f.After = q.Get("cursor")
	req.format = q.Get("format")
	return req, nil
}

func nonEmpty(vs []string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
}

// oldest and newest times a filter takes: what PostgreSQL's timestamptz
// and a shared URL can mean.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// parseTime takes RFC 3339 or a duration before now ("90m", "24h").
func parseTime(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 || d > 100*365*24*time.Hour {
			return time.Time{}, bad("%s=%s: a duration ago must be positive and under 100 years", name, s)
		}
		return now.Add(-d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, bad("%s=%q: send an RFC 3339 time (2026-05-04T10:00:00Z) or a duration ago (24h)", name, s)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, bad("%s=%s is out of range", name, s)
	}
	return t.UTC(), nil
}

// Visibility is what a user may see of Chron: every row (All), or rows of
// Orgs, and rows with no org when NoOrg.
type Visibility struct {
	Orgs  []string
	All   bool
	NoOrg bool
}

// narrow sets the filter's orgs to those asked for that v shows, or all
// v shows when none were asked for.
func (req *request) narrow(v Visibility) chron.Filter {
	f := req.f
	switch {
	case v.All && req.orgs == nil:
		f.Orgs, f.NoOrg = nil, false
	case v.All:
		f.Orgs, f.NoOrg = req.orgs, req.noOrg
	case req.orgs == nil:
		f.Orgs, f.NoOrg = append([]string{}, v.Orgs...), v.NoOrg
	default:
		f.Orgs = []string{}
		for _, o := range req.orgs {
			if slices.Contains(v.Orgs, o) {
				f.Orgs = append(f.Orgs, o)
			}
		}
		f.NoOrg = req.noOrg && v.NoOrg
	}
	return f
}

// Shows says whether v covers a row of org.
func (v Visibility) Shows(org string) bool {
	if v.All {
		return true
	}
	if org == "" {
		return v.NoOrg
	}
	return slices.Contains(v.Orgs, org)
}

// Errors a VisibleOrgs hook returns (wrapped or not) to answer 401 or 403;
// any other error answers 503: what cannot be decided is not shown.
var (
	ErrUnauthenticated = errors.New("console: not authenticated")
	ErrForbidden       = errors.New("console: forbidden")
)
