package kubectlclaiim

// Reading through the console's Chron API (docs/chron-api.md).

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

func (c *consoleClient) close() { c.http.CloseIdleConnections() }

// list pages through /entries with the cursor each page returns.
func (c *consoleClient) list(ctx context.Context, q *chronQuery, limit int, page func([]console.Entry) error) error {
	v := q.values()
	for n := 0; limit == 0 || n < limit; {
		per := chron.MaxLimit
		if limit > 0 {
			per = min(limit-n, chron.MaxLimit)
		}
		v.Set("limit", strconv.Itoa(per))
		var resp console.EntriesResponse
		if err := c.getJSON(ctx, "entries", v, &resp); err != nil {
			return err
		}
		if err := page(resp.Entries); err != nil {
			return err
		}
		n += len(resp.Entries)
		if resp.Next == "" {
			break
		}
		v.Set("cursor", resp.Next)
	}
	return nil
}

// entry is /entries/{id}: the console fetches the row by its id, so no
// filter is needed, and answers 404 alike for a row absent or hidden.
func (c *consoleClient) entry(ctx context.Context, id string, _ *chronQuery) (console.Entry, error) {
	var e console.Entry
	if id == "." || id == ".." {
		return e, fmt.Errorf("%q is not an entry id", id)
	}
	return e, c.getJSON(ctx, "entries/"+url.PathEscape(id), nil, &e)
}

// export copies /export to w as it streams.
func (c *consoleClient) export(ctx context.Context, query url.Values, w io.Writer) error {
	resp, err := c.get(ctx, "export", query, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if n, err := io.Copy(w, resp.Body); err != nil {
		// The console breaks the connection rather than end a cut export
		// as if it were whole.
		return fmt.Errorf("the export broke off after %d bytes, so what was written is incomplete: %w", n, err)
	}
	return nil
}

func (c *consoleClient) verify(ctx context.Context) (console.VerifyResponse, error) {
	var r console.VerifyResponse
	return r, c.getJSON(ctx, "verify", nil, &r)
}
