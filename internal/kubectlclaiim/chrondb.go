package kubectlclaiim

// Reading Chron from its database as the reader role (gate/chron), the
// way `claiim chron list` does.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

type chronDB struct{ pool *pgxpool.Pool }

func (d *chronDB) close() { d.pool.Close() }

func (d *chronDB) list(ctx context.Context, q *chronQuery, limit int, page func([]console.Entry) error) error {
	f, err := q.filter(time.Now())
	if err != nil {
		return err
	}
	for n := 0; limit == 0 || n < limit; {
		f.Limit = chron.MaxLimit
		if limit > 0 {
			f.Limit = min(limit-n, chron.MaxLimit)
		}
		p, err := chron.ListPage(ctx, d.pool, f)
		if err != nil {
			return err
		}
		if err := page(entries(p.Rows)); err != nil {
			return err
		}
		n += len(p.Rows)
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	return nil
}

// errFound stops a listing at the row looked for.
var errFound = errors.New("found")

// entry searches the rows q selects: the reader role reads them in
// pages, as the API does, and a row outside them is not looked for.
func (d *chronDB) entry(ctx context.Context, id string, q *chronQuery) (console.Entry, error) {
	var found console.Entry
	err := d.list(ctx, q, 0, func(page []console.Entry) error {
		if i := slices.IndexFunc(page, func(e console.Entry) bool { return e.ID == id }); i >= 0 {
			found = page[i]
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, nil
	case err != nil:
		return found, err
	}
	return found, fmt.Errorf("no Chron row %s among the rows selected (since %s); widen --since", id, q.since)
}

// filter is q for chron.List; now anchors "since 1h".
func (q *chronQuery) filter(now time.Time) (chron.Filter, error) {
	f := chron.Filter{Outcome: strings.ToUpper(q.outcome), Action: q.action, Reason: q.reason, Kind: q.kind, Agent: q.agent}
	if ns, name, ok := strings.Cut(q.agent, "/"); ok {
		f.Namespace, f.Agent = ns, name
	}
	// As the API: empty values are ignored, "-" is the rows with no org.
	if orgs := slices.DeleteFunc(slices.Clone(q.orgs), func(o string) bool { return o == "" }); len(orgs) > 0 {
		f.Orgs = []string{}
		for _, o := range orgs {
			if o == console.NoOrgParam {
				f.NoOrg = true
			} else {
				f.Orgs = append(f.Orgs, o)
			}
		}
	}
	var err error
	if f.Since, err = when(q.since, now); err != nil {
		return f, fmt.Errorf("--since: %w", err)
	}
	if q.until != "" {
		if f.Until, err = time.Parse(time.RFC3339, q.until); err != nil {
			return f, fmt.Errorf("--until: %w", err)
		}
	}
	return f, nil
}

// when reads a time as RFC 3339 or as a duration before now.
func when(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}
