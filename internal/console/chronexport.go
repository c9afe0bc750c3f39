package console

// GET /api/v1/chron/export: every matching row, page by page, as NDJSON
// (one Entry per line) or CSV (csvHeader), oldest first unless
// order=newest.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

func (a *ChronAPI) export(w http.ResponseWriter, r *http.Request) {
	req, ok := a.filter(w, r, exportParams)
	if !ok {
		return
	}
	if req.order == "" {
		req.f.OldestFirst = true // an export reads like the log: in commit order
	}
	var contentType, ext string
	switch req.format {
	case "", "ndjson":
		contentType, ext = "application/x-ndjson", "ndjson"
	case "csv":
		contentType, ext = "text/csv; charset=utf-8", "csv"
	default:
		writeError(w, http.StatusBadRequest, "format "+quote(req.format)+": send ndjson (the default) or csv")
		return
	}
	release, ok := a.acquire(w)
	if !ok {
		return
	}
	defer release()

	f := req.f
	f.Limit = chron.MaxLimit
	p, err := a.page(r.Context(), f)
	if err != nil {
		a.fail(w, r, err) // nothing written yet: a proper answer
		return
	}
	apiHeaders(w, contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="chron-`+time.Now().UTC().Format("20060102T150405Z")+"."+ext+`"`)
	w.WriteHeader(http.StatusOK)
	var cw *csv.Writer
	var enc *json.Encoder
	if ext == "csv" {
		cw = csv.NewWriter(w)
		_ = cw.Write(csvHeader)
	} else {
		enc = json.NewEncoder(w)
	}
	rc := http.NewResponseController(w)
	for {
		extendWrite(w, writeTimeout)
		for i := range p.Rows {
			e := NewEntry(&p.Rows[i])
			if cw != nil {
				err = cw.Write(e.csvRecord())
			} else {
				err = enc.Encode(e)
			}
			if err != nil {
				return // the client left
			}
		}
		if cw != nil {
			if cw.Flush(); cw.Error() != nil {
				return
			}
		}
		_ = rc.Flush()
		if p.Next == "" {
			return
		}
		f.After = p.Next
		if p, err = a.page(r.Context(), f); err != nil {
			if r.Context().Err() == nil {
				a.Log.Error(err, "A Chron export failed midway; ending it unfinished")
			}
			// The status is sent: break the response so that no client
			// takes a cut export for a whole one.
			panic(http.ErrAbortHandler)
		}
	}
}

// page reads one page with its own timeout.
func (a *ChronAPI) page(ctx context.Context, f chron.Filter) (chron.Page, error) {
	ctx, cancel := context.WithTimeout(ctx, pageTimeout)
	defer cancel()
	return chron.ListPage(ctx, a.Pool, f)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
