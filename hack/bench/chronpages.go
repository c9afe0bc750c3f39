package main

// `bench chron-pages`: how fast the Chron read API pages a large table,
// for an auditor who sees everything and for a user who sees one org
// holding 0.1% of the rows (docs/benchmarks.md, "Reading Chron").

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// pageCase is one listing timed: who reads, and what they ask.
type pageCase struct {
	name  string
	vis   console.Visibility
	query string
}

func chronPages(args []string) error {
	fs := flag.NewFlagSet("chron-pages", flag.ContinueOnError)
	rows := fs.Int64("rows", 1_000_000, "rows in the table (loaded if fewer)")
	dbURL := fs.String("database-url", "", "an owner's URL of a database to load and keep (default: a throwaway PostgreSQL)")
	pages := fs.Int("pages", 50, "next pages timed after each first page")
	rounds := fs.Int("rounds", 5, "times each listing is read")
	limit := fs.Int("limit", 100, "rows per page")
	only := fs.String("only", "", "time only the listings whose name contains this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	url := *dbURL
	if url == "" {
		pg, err := pgtest.Start(ctx)
		if err != nil {
			return err
		}
		defer pg.Stop()
		if url, err = pg.CreateDatabase(ctx, "chron_pages"); err != nil {
			return err
		}
	}
	owner, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer owner.Close()
	if err := chron.Migrate(ctx, owner); err != nil {
		return err
	}
	fmt.Printf("loading %d rows\n", *rows)
	took, err := loadChron(ctx, owner, *rows)
	if err != nil {
		return err
	}
	fmt.Printf("loaded in %s\n", took.Round(time.Second))
	sz, err := sizes(ctx, owner)
	if err != nil {
		return err
	}
	fmt.Print(sz)

	// The API reads as the reader role, through row-level security.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+chron.ReaderRole)
		return err
	}
	reader, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer reader.Close()
	var vis console.Visibility
	api := &console.ChronAPI{Pool: reader, VisibleOrgs: func(*http.Request) ([]string, bool, bool, error) {
		return vis.Orgs, vis.All, vis.NoOrg, nil
	}}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	mid := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(*rows/2) * 10 * time.Millisecond)
	all := console.Visibility{All: true}
	rare := console.Visibility{Orgs: []string{rareOrg}}
	cases := []pageCase{
		{"everything, newest first", all, ""},
		{"everything, oldest first", all, "order=oldest"},
		{"one org of 0.1%, newest first", rare, ""},
		{"one org of 0.1%, oldest first", rare, "order=oldest"},
		{"3 orgs (0.1%, 2%, no org), newest", console.Visibility{Orgs: []string{rareOrg, "org-7"}, NoOrg: true}, ""},
		{"kind=pim.approved (0.2%)", all, "kind=pim.approved"},
		{"one agent (0.02%)", all, "agent=agents/agent-17"},
		{"10 minutes mid-table, newest first", all, "since=" + mid.Format(time.RFC3339) + "&until=" + mid.Add(10*time.Minute).Format(time.RFC3339)},
	}
	fmt.Printf("\n%d rows, pages of %d, %d rounds, %d next pages per round (HTTP GET /api/v1/chron/entries, in process)\n",
		*rows, *limit, *rounds, *pages)
	fmt.Printf("%-38s %10s %10s %10s %10s %10s\n", "listing", "first p50", "first max", "next p50", "next p99", "next max")
	for _, c := range cases {
		if !strings.Contains(c.name, *only) {
			continue
		}
		vis = c.vis
		var first, next []time.Duration
		for range *rounds {
			f, n, err := timePages(ctx, srv.URL, c.query, *limit, *pages)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			first, next = append(first, f), append(next, n...)
		}
		fmt.Printf("%-38s %10s %10s %10s %10s %10s\n", c.name, ms(pct(first, 50)), ms(pct(first, 100)),
			ms(pct(next, 50)), ms(pct(next, 99)), ms(pct(next, 100)))
	}
	return nil
}

// timePages times a first page and up to pages next ones.
func timePages(ctx context.Context, base, query string, limit, pages int) (time.Duration, []time.Duration, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, nil, err
	}
	q.Set("limit", fmt.Sprint(limit))
	var first time.Duration
	var next []time.Duration
	for i := 0; i <= pages; i++ {
		start := time.Now()
		resp, err := get(ctx, base+"/api/v1/chron/entries?"+q.Encode())
		if err != nil {
			return 0, nil, err
		}
		d := time.Since(start)
		if i == 0 {
			first = d
		} else {
			next = append(next, d)
		}
		if resp.Next == "" {
			break
		}
		q.Set("cursor", resp.Next)
	}
	return first, next, nil
}

func get(ctx context.Context, u string) (console.EntriesResponse, error) {
	var out console.EntriesResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return out, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, errors.New(resp.Status + ": " + string(body))
	}
	return out, json.Unmarshal(body, &out)
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p)/100)]
}
