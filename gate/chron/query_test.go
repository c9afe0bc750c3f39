package chron

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// orgLog writes 40 rows over two streams: orgs o0..o3 by i%4, every fifth
// row without an org (a control-plane row), agents a/b by parity,
// reasons by i%3.
func orgLog(t *testing.T) ([]Row, func(Filter) []Row) {
	t.Helper()
	pool, _ := newDB(t)
	ctx := context.Background()
	ws := []*Writer{newWriter(t, pool, WriterOptions{Stream: "gate/0"}), newWriter(t, pool, WriterOptions{Stream: "manager/0"})}
	var all []Row
	for i := range 40 {
		r := decision(i)
		r.Org = fmt.Sprintf("o%d", i%4)
		r.AgentName = []string{"a", "b"}[i%2]
		r.Reason = []string{"POLICY_DENY", "SKILL_FORBIDDEN", "NOT_PERMITTED"}[i%3]
		if i%5 == 0 {
			r.Org, r.Kind, r.AgentName, r.Actor = "", KindPIMApproved, "", "peer@claiim.io"
		}
		row, err := ws[i%2].Write(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, row)
	}
	list := func(f Filter) []Row {
		t.Helper()
		var rows []Row
		for {
			p, err := ListPage(ctx, pool, f)
			if err != nil {
				t.Fatalf("%+v: %v", f, err)
			}
			rows = append(rows, p.Rows...)
			if p.Next == "" {
				return rows
			}
			f.After = p.Next
		}
	}
	return all, list
}

func ids(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func TestListPageFilters(t *testing.T) {
	all, list := orgLog(t)
	want := func(keep func(r Row) bool) []string {
		var out []string
		for _, r := range all {
			if keep(r) {
				out = append(out, r.ID)
			}
		}
		slices.Reverse(out) // newest first
		return out
	}
	in := func(orgs ...string) func(Row) bool {
		return func(r Row) bool { return slices.Contains(orgs, r.Org) }
	}
	for name, c := range map[string]struct {
		f    Filter
		keep func(Row) bool
	}{
		"all":                  {Filter{}, func(Row) bool { return true }},
		"nil orgs, no-org set": {Filter{NoOrg: true}, func(Row) bool { return true }},
		"one org":              {Filter{Orgs: []string{"o1"}}, in("o1")},
		"two orgs":             {Filter{Orgs: []string{"o1", "o3"}}, in("o1", "o3")},
		"orgs and no org":      {Filter{Orgs: []string{"o2"}, NoOrg: true}, in("o2", "")},
		"no org only":          {Filter{Orgs: []string{}, NoOrg: true}, in("")},
		"nothing visible":      {Filter{Orgs: []string{}}, in()},
		"org inside the set":   {Filter{Orgs: []string{"o1", "o2"}, Org: "o2"}, in("o2")},
		"org outside the set":  {Filter{Orgs: []string{"o1"}, Org: "o2"}, in()},
		"org alone":            {Filter{Org: "o3"}, in("o3")},
		"agent":                {Filter{Agent: "a"}, func(r Row) bool { return r.AgentName == "a" }},
		"reason":               {Filter{Reason: "NOT_PERMITTED"}, func(r Row) bool { return r.Reason == "NOT_PERMITTED" }},
		"kind":                 {Filter{Kind: string(KindPIMApproved)}, func(r Row) bool { return r.Kind == KindPIMApproved }},
		"reason and orgs": {Filter{Reason: "POLICY_DENY", Orgs: []string{"o0", "o1"}, NoOrg: true},
			func(r Row) bool { return r.Reason == "POLICY_DENY" && in("o0", "o1", "")(r) }},
		"time": {Filter{Since: base.Add(10 * time.Second), Until: base.Add(20 * time.Second)},
			func(r Row) bool {
				return !r.Time.Before(base.Add(10*time.Second)) && r.Time.Before(base.Add(20*time.Second))
			}},
	} {
		for _, limit := range []int{3, 1000} {
			f := c.f
			f.Limit = limit
			if got, w := ids(list(f)), want(c.keep); !slices.Equal(got, w) {
				t.Errorf("%s, pages of %d: got %v\nwant %v", name, limit, got, w)
			}
			f.OldestFirst = true
			w := want(c.keep)
			slices.Reverse(w)
			if got := ids(list(f)); !slices.Equal(got, w) {
				t.Errorf("%s, oldest first, pages of %d: got %v\nwant %v", name, limit, got, w)
			}
		}
	}
}

// TestListPageManyOrgs: past maxOrgBranches the set is one filter; the
// result is the same.
func TestListPageManyOrgs(t *testing.T) {
	all, list := orgLog(t)
	orgs := []string{"o1", "o2"}
	for i := range maxOrgBranches {
		orgs = append(orgs, fmt.Sprintf("other-%d", i))
	}
	got := ids(list(Filter{Orgs: orgs, Limit: 7}))
	var want []string
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Org == "o1" || all[i].Org == "o2" {
			want = append(want, all[i].ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d orgs: got %v, want %v", len(orgs), got, want)
	}
}

// TestTailCursors: the Tail of a newest-first listing and of a caught-up
// oldest-first page lists exactly the rows written after them.
func TestTailCursors(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{Stream: "gate/0"})
	write := func(n int) (out []string) {
		for i := range n {
			r, err := w.Write(ctx, decision(i))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.ID)
		}
		return out
	}
	empty, err := ListPage(ctx, pool, Filter{})
	if err != nil || len(empty.Rows) != 0 || empty.Next != "" || empty.Tail == "" {
		t.Fatalf("an empty log: %+v, %v", empty, err)
	}
	start, err := Horizon(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	first := write(5)
	newest, err := ListPage(ctx, pool, Filter{Limit: 2})
	if err != nil || len(newest.Rows) != 2 || newest.Next == "" || newest.Tail == "" {
		t.Fatalf("first page: %+v, %v", newest, err)
	}
	if p2, err := ListPage(ctx, pool, Filter{Limit: 2, After: newest.Next}); err != nil || p2.Tail != "" {
		t.Errorf("a later newest-first page has a tail: %+v, %v", p2, err)
	}
	second := write(3)
	for name, c := range map[string]struct {
		after string
		want  []string
	}{
		"empty log's tail": {empty.Tail, append(slices.Clone(first), second...)},
		"Horizon":          {start, append(slices.Clone(first), second...)},
		"newest-first":     {newest.Tail, second},
	} {
		p, err := ListPage(ctx, pool, Filter{OldestFirst: true, After: c.after})
		if err != nil || !slices.Equal(ids(p.Rows), c.want) || p.Next != "" {
			t.Errorf("%s: %v, next %q, %v; want %v", name, ids(p.Rows), p.Next, err, c.want)
			continue
		}
		// Caught up: the tail moves to the horizon and finds nothing more.
		again, err := ListPage(ctx, pool, Filter{OldestFirst: true, After: p.Tail})
		if err != nil || len(again.Rows) != 0 || again.Tail == "" {
			t.Errorf("%s, after catching up: %v, %v", name, ids(again.Rows), err)
		}
		for i := range p.Rows {
			rest, err := ListPage(ctx, pool, Filter{OldestFirst: true, After: p.After(i)})
			if err != nil || !slices.Equal(ids(rest.Rows), c.want[i+1:]) {
				t.Errorf("%s, after row %d: %v, %v", name, i, ids(rest.Rows), err)
			}
		}
	}
}

func TestGet(t *testing.T) {
	all, _ := orgLog(t)
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{Stream: "gate/0"})
	want, err := w.Write(ctx, decision(3))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Get(ctx, pool, want.ID)
	if err != nil || got.Hash != want.Hash || got.PrevHash != GenesisHash || got.Seq != 1 || got.Stream != "gate/0" ||
		got.Policies[0].Name != "no-prod-deploys" || got.Context["target"] != "prod-eu-1" || got.Format != FormatV1 {
		t.Errorf("Get: %+v, %v", got, err)
	}
	if _, err := Get(ctx, pool, all[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of another database's id: %v", err)
	}
}
