package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

// Reasons of a call held by a RequireApproval rule. Every one is a DENY
// (HTTP 403) but the ALLOW of an approved call: a client that treats
// anything but ALLOW as "do not act" stays safe without knowing them.
const (
	// ReasonApprovalRequired: no approval was presented; the answer's
	// approval_id names the ActionApproval people can now approve.
	ReasonApprovalRequired = "APPROVAL_REQUIRED"
	// ReasonApprovalPending: the approval exists (or will, in seconds)
	// but has fewer signed approvers than required.
	ReasonApprovalPending = "APPROVAL_PENDING"
	// ReasonApprovalUsed: the approval already allowed one call.
	ReasonApprovalUsed = "APPROVAL_USED"
	// ReasonApprovalMismatch: the approval is for another call (agent,
	// action, context or skill version).
	ReasonApprovalMismatch = "APPROVAL_MISMATCH"
	// ReasonApprovalExpired: its time ran out before it was used.
	ReasonApprovalExpired = "APPROVAL_EXPIRED"
	// ReasonApprovalDenied: a person denied it.
	ReasonApprovalDenied = "APPROVAL_DENIED"
)

// ApprovalCheck is what a RequireApproval rule asked of a decision and
// what the presented approval, if any, gave.
type ApprovalCheck struct {
	// What the matching rules require: the most approvers any asks
	// for, the shortest time any gives, and the first rule (for the record).
	Required     int32
	TTL          time.Duration
	Policy, Rule string
	// Approvers of the approval that allowed the call; Use is its id,
	// which the server consumes atomically with the decision's row.
	Approvers []string
	Use       string
}

// add folds one more matching RequireApproval rule into the requirement.
func (c *ApprovalCheck) add(m PolicyMatch, r *Rule) *ApprovalCheck {
	if c == nil {
		return &ApprovalCheck{Required: r.ApprovalsRequired, TTL: r.ApprovalTTL, Policy: m.Policy, Rule: m.Rule}
	}
	c.Required, c.TTL = max(c.Required, r.ApprovalsRequired), min(c.TTL, r.ApprovalTTL)
	return c
}

// approve holds an ALLOW that RequireApproval rules matched until the
// request presents an approval of this exact call, signed by the manager,
// with enough distinct approvers, neither denied nor expired.
func (s *Snapshot) approve(d *Decision, req Request, c *ApprovalCheck) {
	d.Approval = c
	deny := func(reason, msg string) { d.Outcome, d.Reason, d.Message = Deny, reason, msg }
	rule := fmt.Sprintf("policy %s rule %s", c.Policy, c.Rule)
	if req.ApprovalID == "" {
		deny(ReasonApprovalRequired, fmt.Sprintf("%s requires %d person(s) to approve this exact call: an approver runs `kubectl claiim approval approve <approval_id> -n %s`; then retry the same call with approval_id within %s",
			rule, c.Required, req.Agent.Namespace, c.TTL))
		return
	}
	ap := req.Approval
	if ap == nil {
		deny(ReasonApprovalPending, fmt.Sprintf("approval %s is not known to the gate yet: the manager creates it from Chron within seconds of the request; wait for it to be approved, then retry", req.ApprovalID))
		return
	}
	if what := approvalMismatch(ap, req); what != "" {
		deny(ReasonApprovalMismatch, fmt.Sprintf("approval %s is for another call (%s differs); an approval holds for one exact call: ask again without approval_id", ap.Name, what))
		return
	}
	reason, msg, approvers := s.Judge(ap, c.Required, req.Now)
	if reason != "" {
		deny(reason, msg)
		return
	}
	c.Approvers, c.Use = approvers, ap.Name
	d.Message += fmt.Sprintf("; approval %s by %s (one use)", ap.Name, strings.Join(approvers, ", "))
}

// Judge says what the gate makes of ap at now, for a call that needs
// required approvers (at least what ap itself asks): "" when it allows
// the call once, else the APPROVAL_* reason and why. A denial wins, then
// expiry; approvers count only under admission's signature. Whether ap is
// for the call at hand is Decide's check.
func (s *Snapshot) Judge(ap *claiimv1.ActionApproval, required int32, now time.Time) (reason, msg string, approvers []string) {
	st := ap.State(now)
	need := max(required, ap.Spec.ApprovalsRequired, 1)
	signed := verify(s.keys, attest.Approval(ap), ap.Annotations[claiimv1.AnnotationApprovalAttestation])
	switch {
	case st.DeniedBy != "":
		return ReasonApprovalDenied, fmt.Sprintf("approval %s was denied by %s: %s", ap.Name, st.DeniedBy, ap.Annotations[claiimv1.AnnotationDeny]), nil
	case st.Phase == claiimv1.ApprovalExpired:
		return ReasonApprovalExpired, fmt.Sprintf("approval %s expired at %s; ask again without approval_id for a new one", ap.Name, ap.Spec.ExpiresAt.UTC().Format(time.RFC3339)), nil
	case signed != nil && len(st.Approvers) > 0:
		return ReasonApprovalPending, fmt.Sprintf("approval %s: its approvers count for nothing, because %s; an approver approves again", ap.Name, signed), nil
	case int32(len(st.Approvers)) < need:
		return ReasonApprovalPending, fmt.Sprintf("approval %s has %d of %d approvals; wait, then retry", ap.Name, len(st.Approvers), need), nil
	}
	return "", "", st.Approvers
}

// approvalMismatch names what differs between the approved call and this one.
func approvalMismatch(ap *claiimv1.ActionApproval, req Request) string {
	a, sp := req.Agent, &ap.Spec
	switch {
	case ap.Name != req.ApprovalID:
		return "approval id"
	case ap.Namespace != a.Namespace || sp.Agent != a.Name || sp.AgentUID != a.UID:
		return "agent"
	case sp.Action != req.Action:
		return "action"
	case sp.ContextDigest != req.ContextDigest:
		return "context"
	case sp.SkillVersionID != req.SkillVersionID:
		return "skill version"
	}
	return ""
}

// ContextDigest is "sha256:<hex>" of the context's JSON with its keys
// sorted (encoding/json sorts map keys, and numbers come as float64):
// the same context gives the same digest on every replica. No context and
// an empty one are the same.
func ContextDigest(ctx map[string]any) string {
	b, err := json.Marshal(orEmpty(ctx))
	if err != nil { // the server decoded it from JSON: it encodes again
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
