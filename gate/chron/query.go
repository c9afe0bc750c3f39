package chron

// Reading in commit order (0004_commit_order.sql): keyset pages over
// (txid, stream, seq) that stop at the horizon, the oldest transaction
// still running, so no row can commit behind a cursor.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Page is one page of a listing.
type Page struct {
	Rows []Row
	// Next continues the listing after the last row, in its order; empty
	// when there is nothing more to read now (oldest first: until more
	// rows commit, which Tail waits for).
	Next string
	// Tail continues oldest first after everything this listing has
	// covered: a tail from it returns exactly the rows the listing does
	// not. Set by every oldest-first page and by a newest-first listing's
	// first page (After empty).
	Tail string

	positions []position
	newest    bool
}

// After is the cursor that continues the listing after Rows[i]: the id of
// a server-sent event, from which a reconnecting client resumes.
func (p *Page) After(i int) string { return encodeCursor(p.positions[i], p.newest) }

// ErrNotFound is an ID no row has (or none the caller may see).
var ErrNotFound = errors.New("chron: no such row")

// maxOrgBranches bounds the per-org branches of one query (see orgSQL).
const maxOrgBranches = 64

// ListPage returns up to f.Limit rows matching f in commit order, newest
// first unless f.OldestFirst, after the cursor f.After. Only rows of
// transactions older than the horizon are listed, so a transaction that
// commits late cannot land behind a cursor: it is listed once every
// transaction before it has ended. A transaction that stays open (on any
// table of the cluster) holds back what is listed after it until it ends.
// Keyset pagination: a page costs the same however deep it is.
func ListPage(ctx context.Context, pool *pgxpool.Pool, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	page := Page{newest: !f.OldestFirst}
	q := query{}
	var after *position
	if f.After != "" {
		p, newest, err := decodeCursor(f.After)
		if err != nil {
			return Page{}, err
		}
		if newest != page.newest {
			return Page{}, fmt.Errorf("%w (it continues a listing in the other order)", ErrCursor)
		}
		after = &p
	}
	sql := q.pageSQL(f, after, page.newest, limit)
	// QueryExecModeExec plans with the values: the partial kind index and
	// the org and agent estimates need them.
	rows, err := pool.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, q.args...)...)
	if err != nil {
		return Page{}, fmt.Errorf("chron: list: %w", err)
	}
	var horizon, txid uint64
	var found bool
	var raw rawRow
	dest := append([]any{&horizon, &found}, raw.dest()...)
	dest = append(dest, &txid)
	if _, err := pgx.ForEachRow(rows, dest, func() error {
		if !found {
			return nil
		}
		row, err := raw.decode()
		if err == nil {
			page.Rows = append(page.Rows, row)
			page.positions = append(page.positions, position{txid: txid, stream: row.Stream, seq: row.Seq})
		}
		return err
	}); err != nil {
		return Page{}, fmt.Errorf("chron: list: %w", err)
	}
	if len(page.Rows) > limit {
		page.Rows, page.positions = page.Rows[:limit], page.positions[:limit]
		page.Next = page.After(limit - 1)
	}
	hz := position{txid: horizon}
	switch {
	case page.newest && after == nil:
		page.Tail = encodeCursor(hz, false)
	case !page.newest && page.Next != "":
		page.Tail = page.Next
	case !page.newest:
		// Caught up: resume at the horizon, not at the last row, so the
		// next read skips what was scanned and filtered out.
		if after != nil && hz.before(*after) {
			hz = *after
		}
		page.Tail = encodeCursor(hz, false)
	}
	return page, nil
}

// Horizon returns an oldest-first cursor at the current horizon: a tail
// from it lists the rows that commit from now on.
func Horizon(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var h uint64
	if err := pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())").Scan(&h); err != nil {
		return "", fmt.Errorf("chron: reading the horizon: %w", err)
	}
	return encodeCursor(position{txid: h}, false), nil
}

// Get returns the row with the given ID, committed, whatever the horizon.
func Get(ctx context.Context, pool *pgxpool.Pool, id string) (Row, error) {
	stored, err := lookup(ctx, pool, []string{id})
	if err != nil {
		return Row{}, fmt.Errorf("chron: get %q: %w", id, err)
	}
	r, ok := stored[id]
	if !ok {
		return Row{}, ErrNotFound
	}
	return r.Row, nil
}

// query collects a statement's parameters.
type query struct{ args []any }

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// pageSQL is one statement: the horizon and the page read under the same
// snapshot. The LEFT JOIN keeps one row, found false, when the page is
// empty, so the horizon always comes back.
func (q *query) pageSQL(f Filter, after *position, newest bool, limit int) string {
	order := orderBy("", newest)
	conds := []string{"txid < h.horizon"}
	for _, eq := range []struct{ col, v string }{
		{"agent_name", f.Agent}, {"agent_namespace", f.Namespace}, {"outcome", strings.ToUpper(f.Outcome)},
		{"action", f.Action}, {"kind", f.Kind}, {"reason", f.Reason},
	} {
		if eq.v != "" {
			conds = append(conds, eq.col+" = "+q.arg(eq.v))
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "time >= "+q.arg(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "time < "+q.arg(f.Until))
	}
	if after != nil {
		cmp := " > "
		if newest {
			cmp = " < "
		}
		conds = append(conds, `(txid, stream COLLATE "C", seq)`+cmp+"("+q.arg(after.txid)+", "+q.arg(after.stream)+", "+q.arg(after.seq)+")")
	}
	n := strconv.Itoa(limit + 1) // one more: is there a next page?
	inner := q.orgSQL(f, conds, order, n)
	return "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon)\n" +
		"SELECT h.horizon, r.id IS NOT NULL, " + rowColumns + ", coalesce(r.txid, '0')\n" +
		"FROM h LEFT JOIN LATERAL (" + inner + ") r ON true\n" +
		"ORDER BY " + orderBy("r.", newest)
}

// orderBy is commit order, as the indexes have it.
func orderBy(prefix string, newest bool) string {
	dir := ""
	if newest {
		dir = " DESC"
	}
	return prefix + "txid" + dir + ", " + prefix + `stream COLLATE "C"` + dir + ", " + prefix + "seq" + dir
}

// orgSQL restricts the page to its orgs. One org is a range of the org
// index. Several are one branch each, merged in order (Merge Append), so
// a page reads about limit rows whatever the orgs' sizes; past
// maxOrgBranches, one scan filters on the set.
func (q *query) orgSQL(f Filter, conds []string, order, n string) string {
	orgs, all := f.orgSet()
	sel := func(extra ...string) string {
		return "SELECT * FROM chron_records WHERE " + strings.Join(append(slices.Clone(conds), extra...), " AND ") +
			" ORDER BY " + order + " LIMIT " + n
	}
	switch {
	case all:
		return sel()
	case len(orgs) == 0:
		return sel("false")
	case len(orgs) == 1:
		return sel("org = " + q.arg(orgs[0]))
	case len(orgs) > maxOrgBranches:
		return sel("org = ANY(" + q.arg(orgs) + "::text[])")
	}
	branches := make([]string, len(orgs))
	for i, o := range orgs {
		branches[i] = "(" + sel("org = "+q.arg(o)) + ")"
	}
	return "SELECT * FROM (" + strings.Join(branches, " UNION ALL ") + ") u ORDER BY " + order + " LIMIT " + n
}

// orgSet is the set of orgs f admits ("" for rows without one), or all.
func (f *Filter) orgSet() (orgs []string, all bool) {
	if f.Orgs == nil {
		if f.Org == "" {
			return nil, true
		}
		return []string{f.Org}, false
	}
	set := slices.Clone(f.Orgs)
	if f.NoOrg {
		set = append(set, "")
	}
	slices.Sort(set)
	set = slices.Compact(set)
	if f.Org != "" {
		if slices.Contains(set, f.Org) {
			return []string{f.Org}, false
		}
		return []string{}, false
	}
	return set, false
}
