// Package client is the Go client of the CLAIIM gate. It is fail-closed:
// any failure to get an answer is a *Denied error, never an ALLOW.
//
// Retries never decide an action twice. Every Validate sends an
// Idempotency-Key, new for the call and the same on each of its tries, and
// the gate answers every try carrying it with the one decision it recorded
// first. The client itself retries only a connection that was never made
// (refused, no route), at most three tries within the caller's context;
// net/http replays a request on a kept-alive connection the gate closed
// under it, which the key makes safe. A request the gate may have read is
// never retried by this package: no answer is a DENY.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/api"
)

// Client asks the gate before every action.
type Client struct {
	gateURL, token, skillVersionID string
	http                           *http.Client
}

// New makes a client. gateURL is the API base, e.g.
// "http://localhost:8181/v" (the CLAIIM_GATE_URL of the token Secret).
func New(gateURL, agentToken, skillVersionID string) *Client {
	return &Client{
		gateURL: strings.TrimSuffix(gateURL, "/"), token: agentToken, skillVersionID: skillVersionID,
		http: &http.Client{Timeout: 10 * time.Second,
			// A redirect would resend the token elsewhere; a 30x is a DENY.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// WithHTTPClient replaces the HTTP client (timeouts, TLS).
func (c *Client) WithHTTPClient(h *http.Client) *Client { c.http = h; return c }

// Result is an ALLOW: the gate's answer as it sent it.
type Result = api.ValidateResponse

// Denied is returned for a DENY and for any failure to get an answer.
type Denied struct {
	Status  int // HTTP status, 0 when the gate was not reached
	Reason  string
	Message string
	// DecisionID is the id of the Chron row that recorded the DENY (a
	// refused authentication: the id of its interval's auth.refused row);
	// empty when the gate was not reached.
	DecisionID string
	ChronID    string
	Err        error // the transport or decoding error, if any
	// ApprovalID, with the APPROVAL_* reasons, names the approval of this
	// exact call: WaitForApproval, then Validate again WithApprovalID.
	ApprovalID string
	// Audit lists rules of Audit policies that would have denied; they
	// did not change the answer (an ALLOW's are in Result.Audit).
	Audit []api.PolicyMatch
}

func (d *Denied) Error() string {
	if d.Err != nil {
		return fmt.Sprintf("DENY %s: %s: %v", d.Reason, d.Message, d.Err)
	}
	return fmt.Sprintf("DENY %s: %s", d.Reason, d.Message)
}

func (d *Denied) Unwrap() error { return d.Err }

// Identity is what /v/init tells an agent about itself: who it is, its
// pinned skill version with the display name, agent email and system
// prompt it runs as, and the init's Chron row.
type Identity = api.InitResponse

// Init authenticates and returns the agent's identity. An agent that may
// not act (AGENT_INACTIVE: its anchor has not accepted it, it is suspended;
// NOT_ADMITTED) gets a *Denied saying why.
func (c *Client) Init(ctx context.Context) (*Identity, error) {
	var id Identity
	status, body, err := c.post(ctx, "/init", api.InitRequest{SkillVersionID: c.skillVersionID}, "")
	if err != nil {
		return nil, &Denied{Reason: api.ReasonUnreachable, Message: "the gate could not be reached", Err: err}
	}
	if status != http.StatusOK {
		return nil, denied(status, body)
	}
	if err := json.Unmarshal(body, &id); err != nil {
		return nil, &Denied{Status: status, Reason: api.ReasonBadResponse, Message: "the gate's answer was not understood", Err: err}
	}
	return &id, nil
}

// ValidateOption adjusts one Validate call.
type ValidateOption func(*validateCall)

type validateCall struct{ key, approvalID string }

// WithIdempotencyKey sends key instead of a fresh one, for a caller that
// retries a call itself (after a restart, say) and wants the gate's first
// answer again rather than a second decision. The gate repeats a decision
// for a few minutes only (gate/server.KeyWindow). Use a new key for each
// action the agent means to take: NewKey makes one.
func WithIdempotencyKey(key string) ValidateOption {
	return func(v *validateCall) { v.key = key }
}

// Validate asks whether the agent may take action with the given context.
// It returns a Result only for an ALLOW; everything else is a *Denied.
func (c *Client) Validate(ctx context.Context, action string, actx map[string]any, opts ...ValidateOption) (*Result, error) {
	call := validateCall{}
	for _, o := range opts {
		o(&call)
	}
	if call.key == "" {
		call.key = NewKey()
	}
	status, body, err := c.post(ctx, "/validate", api.ValidateRequest{Action: action, Context: actx, SkillVersionID: c.skillVersionID,
		ApprovalID: call.approvalID}, call.key)
	if err != nil {
		return nil, &Denied{Reason: api.ReasonUnreachable, Message: "the gate could not be reached, so the action is denied (fail-closed)", Err: err}
	}
	var r Result
	if status != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Outcome != api.Allow {
		return nil, withApproval(denied(status, body), body)
	}
	return &r, nil
}

func denied(status int, body []byte) *Denied {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return &Denied{Status: status, Reason: api.ReasonBadResponse, Message: fmt.Sprintf("HTTP %d with an unreadable body", status), Err: err}
	}
	d := &Denied{Status: status}
	d.Reason, _ = raw["reason"].(string)
	d.Message, _ = raw["message"].(string)
	d.DecisionID, _ = raw["decision_id"].(string)
	d.ChronID, _ = raw["chron_id"].(string)
	if d.Reason == "" {
		d.Reason = api.ReasonBadResponse
	}
	var audit struct {
		Audit []api.PolicyMatch `json:"audit"`
	}
	if json.Unmarshal(body, &audit) == nil { // malformed: none, it never changes the answer
		d.Audit = audit.Audit
	}
	return d
}

// post sends v, trying again only when the connection was never made.
// key, when set, is the Idempotency-Key of every try.
func (c *Client) post(ctx context.Context, path string, v any, key string) (int, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, nil, err
	}
	for try := 1; ; try++ {
		status, body, err := c.send(ctx, path, b, key)
		if err == nil || try == maxTries || !neverSent(err) {
			return status, body, err
		}
		select {
		case <-ctx.Done():
			return 0, nil, err
		case <-time.After(backoff(try)):
		}
	}
}

func (c *Client) send(ctx context.Context, path string, b []byte, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.gateURL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	if key != "" {
		req.Header.Set(api.IdempotencyKeyHeader, key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, body, nil
}

// IsDenied reports whether err is a Denied (a DENY or any failure).
func IsDenied(err error) bool {
	var d *Denied
	return errors.As(err, &d)
}
