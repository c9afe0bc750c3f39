package client

// Calls held for approval (a RequireApproval policy rule): the gate
// answers DENY APPROVAL_REQUIRED with an approval id; people approve that
// exact call; the agent waits, then asks again with the id and is allowed
// once.
//
//	_, err := c.Validate(ctx, "payments:send", pay)
//	var d *client.Denied
//	if errors.As(err, &d) && d.ApprovalID != "" {
//		if _, err = c.WaitForApproval(ctx, d.ApprovalID, 10*time.Minute); err == nil {
//			_, err = c.Validate(ctx, "payments:send", pay, client.WithApprovalID(d.ApprovalID))
//		}
//	}

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/claiim/claiim-operator/gate/api"
)

// ApprovalStatus is where an approval is (GET /v/approvals/{id}).
type ApprovalStatus = api.ApprovalStatus

// WithApprovalID presents an approval of this exact call: the same
// action and context as the call answered APPROVAL_REQUIRED.
func WithApprovalID(id string) ValidateOption {
	return func(v *validateCall) { v.approvalID = id }
}

// withApproval adds the answer's approval id to a Denied.
func withApproval(d *Denied, body []byte) *Denied {
	var r struct {
		ApprovalID string `json:"approval_id"`
	}
	if json.Unmarshal(body, &r) == nil && len(r.ApprovalID) <= api.MaxApprovalIDLen {
		d.ApprovalID = r.ApprovalID
	}
	return d
}

// approvalPoll bounds how often WaitForApproval asks.
var approvalPoll = struct{ first, max time.Duration }{500 * time.Millisecond, 5 * time.Second}

// WaitForApproval asks the gate about approvalID until people approved it
// (nil error), denied it, it expired or was used, or timeout (or ctx) ran out: each of
// those is a *Denied, with the status when the gate gave one. Approved
// means "retry now"; the retry's answer is still the gate's to give.
func (c *Client) WaitForApproval(ctx context.Context, approvalID string, timeout time.Duration) (*ApprovalStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wait := approvalPoll.first
	var last *ApprovalStatus
	for {
		st, err := c.approval(ctx, approvalID)
		switch {
		case err != nil && ctx.Err() == nil:
			return nil, err
		case err == nil && st.State == api.ApprovalApproved:
			return st, nil
		case err == nil && st.State != api.ApprovalPending:
			reason := api.ReasonApprovalDenied
			switch st.State {
			case api.ApprovalExpired:
				reason = api.ReasonApprovalExpired
			case api.ApprovalUsed:
				reason = api.ReasonApprovalUsed
			}
			return st, &Denied{Status: http.StatusForbidden, Reason: reason, Message: st.Message, ApprovalID: approvalID}
		case err == nil:
			last = st
		}
		select {
		case <-ctx.Done():
			return last, &Denied{Reason: api.ReasonApprovalPending, ApprovalID: approvalID,
				Message: fmt.Sprintf("approval %s is still pending after %s: the action is denied", approvalID, timeout)}
		case <-time.After(wait):
		}
		wait = min(2*wait, approvalPoll.max)
	}
}

// approval asks once. A gate that can't answer now (starting, overloaded)
// counts as pending; anything else unexpected is a *Denied.
func (c *Client) approval(ctx context.Context, id string) (*ApprovalStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.gateURL+"/approvals/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, &Denied{Reason: api.ReasonBadRequest, Message: "the approval id does not make a URL", Err: err, ApprovalID: id}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return &ApprovalStatus{ApprovalID: id, State: api.ApprovalPending}, nil // the gate may be back at the next poll
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusTooManyRequests:
		return &ApprovalStatus{ApprovalID: id, State: api.ApprovalPending}, nil
	case resp.StatusCode != http.StatusOK:
		return nil, withApproval(denied(resp.StatusCode, body), body)
	}
	var st ApprovalStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, &Denied{Status: resp.StatusCode, Reason: api.ReasonBadResponse, Message: "the gate's answer was not understood", Err: err, ApprovalID: id}
	}
	return &st, nil
}
