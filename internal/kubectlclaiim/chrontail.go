package kubectlclaiim

// `chron tail`: the console's /tail, server-sent events, followed as a
// browser's EventSource follows it. Each event's id is the cursor after
// its row; when the stream ends (the console ends every tail after a few
// minutes, to authorize the person again) the tail reconnects with
// Last-Event-ID and resumes exactly after the last row it printed.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/internal/console"
)

// Bounds on what a console sends: one line, one event, and how long to
// wait before reconnecting.
const (
	maxEventBytes = 16 << 20
	minRetry      = 500 * time.Millisecond
	maxRetry      = time.Minute
)

// fatalError ends a tail: retrying would not help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// sseStream is where a tail resumes, and when.
type sseStream struct {
	last  string        // the last event's id
	retry time.Duration // the console's reconnection delay
}

// tail follows the rows query selects that commit from now on: started
// once the first connection is answered, rows with each batch of rows
// read together. It returns nil when ctx ends, or the error that ends it:
// a refusal of the first connection or of a later one (the token expired),
// or a failure to print. Broken streams and answers that say "try again"
// are told to warn and retried.
func (c *consoleClient) tail(ctx context.Context, query url.Values, started func(), rows func([]console.Entry) error, warn func(string)) error {
	s := &sseStream{retry: 2 * time.Second}
	connected := false
	for {
		h := http.Header{"Accept": {"text/event-stream"}}
		if s.last != "" {
			h.Set("Last-Event-ID", s.last)
		}
		resp, err := c.get(ctx, "tail", query, h)
		if err == nil {
			if !connected {
				started()
				connected = true
			}
			err = s.read(resp.Body, rows, warn)
			_ = resp.Body.Close()
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil: // the console ended the stream: resume
		case !connected || !retryable(err):
			return err
		default:
			warn(fmt.Sprintf("the tail broke off (%v); resuming in %s", err, s.retry))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.retry):
		}
	}
}

func retryable(err error) bool {
	var fe *fatalError
	var ae *apiError
	switch {
	case errors.As(err, &fe), errors.Is(err, errNoBearer):
		return false
	case errors.As(err, &ae):
		return ae.status == http.StatusTooManyRequests || ae.status >= 500
	}
	return true // the network
}

// read dispatches the events of one stream (the EventSource rules: a
// blank line ends an event, "id" moves the resume point even without
// data, lines starting with ":" are comments). Rows that arrived together
// are handed over together. It returns nil at the stream's end.
func (s *sseStream) read(body io.Reader, rows func([]console.Entry) error, warn func(string)) error {
	br := bufio.NewReaderSize(body, 64<<10)
	id, event := s.last, ""
	var data strings.Builder
	var batch []console.Entry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rows(batch)
		batch = nil
		if err != nil {
			return &fatalError{err}
		}
		return nil
	}
	for {
		line, err := readLine(br)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			if errors.Is(err, io.EOF) {
				return nil // an event cut off before its blank line is dropped, as a browser drops it
			}
			return err
		}
		if line != "" {
			if err := s.field(line, &id, &event, &data); err != nil {
				return err
			}
			continue
		}
		if data.Len() > 0 {
			payload := strings.TrimSuffix(data.String(), "\n")
			switch event {
			case "entry":
				var e console.Entry
				if err := json.Unmarshal([]byte(payload), &e); err != nil {
					return &fatalError{fmt.Errorf("the console sent an entry that is not one: %w", err)}
				}
				batch = append(batch, e)
			case "error":
				var msg string
				if json.Unmarshal([]byte(payload), &msg) != nil {
					msg = payload
				}
				warn("the console: " + msg)
			}
		}
		s.last, event = id, ""
		data.Reset()
		if br.Buffered() == 0 { // nothing more has arrived: show what has
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// field reads one line of an event into it.
func (s *sseStream) field(line string, id, event *string, data *strings.Builder) error {
	if line[0] == ':' {
		return nil
	}
	name, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch name {
	case "id":
		if !strings.ContainsRune(value, 0) {
			*id = value
		}
	case "event":
		*event = value
	case "data":
		if data.Len()+len(value) > maxEventBytes {
			return &fatalError{fmt.Errorf("the console sent an event over %d bytes", maxEventBytes)}
		}
		data.WriteString(value)
		data.WriteByte('\n')
	case "retry":
		if ms, err := strconv.Atoi(value); err == nil {
			s.retry = min(max(time.Duration(ms)*time.Millisecond, minRetry), maxRetry)
		}
	}
	return nil
}

// readLine reads one line without its line break, up to maxEventBytes.
func readLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxEventBytes {
			return "", &fatalError{fmt.Errorf("the console sent a line over %d bytes", maxEventBytes)}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err // a line without its break is not whole
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
	}
}
