package console

// GET /api/v1/chron/verify: chron.VerifyWith, as `claiim chron verify`
// runs it. It reads every stream whole, so only a user who sees every row
// may run it, and one runs at a time.

import (
	"net/http"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// VerifyResponse is the body of GET /api/v1/chron/verify. OK is false
// when a problem was found: the verification ran, and the log is not
// intact.
type VerifyResponse struct {
	OK          bool      `json:"ok"`
	Offline     bool      `json:"offline"` // no keys nor checkpoints: the database alone
	Rows        int64     `json:"rows"`
	Streams     int       `json:"streams"`
	Checkpoints int       `json:"checkpoints"`
	Unkeyed     int64     `json:"unkeyed"` // keyed rows checked by their links only
	Problems    []Problem `json:"problems"`
}

// Problem is the first break found in one stream.
type Problem struct {
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
	ID     string `json:"id"`
	What   string `json:"what"`
}

// verifyTimeout bounds one verification: a log of ten million rows takes
// minutes.
const verifyTimeout = 30 * time.Minute

func (a *ChronAPI) verify(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, "verify takes no query parameters")
		return
	}
	v, ok := a.visibility(w, r)
	if !ok {
		return
	}
	if !v.All {
		writeError(w, http.StatusForbidden, "verify reads every stream whole: it needs the right to see every org's rows")
		return
	}
	if !a.verifying.TryLock() {
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusTooManyRequests, "a verification is running; try again when it has finished")
		return
	}
	defer a.verifying.Unlock()
	extendWrite(w, verifyTimeout+writeTimeout)
	ctx := r.Context()
	var opts chron.VerifyOptions
	var found []chron.Problem
	if a.VerifyOptions != nil {
		var err error
		if opts, found, err = a.VerifyOptions(ctx); err != nil {
			a.Log.Error(err, "Reading Chron's keys and checkpoints for verify failed")
			writeError(w, http.StatusServiceUnavailable, "the keys and checkpoints to verify against cannot be read now; try again")
			return
		}
	}
	rep, err := chron.VerifyWith(ctx, a.Pool, opts)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// A stream already blamed while reading its checkpoint is reported
	// once, as `claiim chron verify` does.
	blamed := map[string]bool{}
	for _, p := range found {
		blamed[p.Stream] = true
	}
	for _, p := range rep.Problems {
		if !blamed[p.Stream] {
			found = append(found, p)
		}
	}
	resp := VerifyResponse{OK: len(found) == 0, Offline: a.VerifyOptions == nil, Rows: rep.Rows, Streams: rep.Streams,
		Checkpoints: rep.Checkpoints, Unkeyed: rep.Unkeyed, Problems: make([]Problem, len(found))}
	for i, p := range found {
		resp.Problems[i] = Problem{Stream: p.Stream, Seq: p.Seq, ID: p.ID, What: p.What}
	}
	writeJSON(w, http.StatusOK, resp)
}
