// Package api is the gate's wire format: the JSON bodies of POST /v/init
// and POST /v/validate, written by gate/server and read by the clients. It
// imports the standard library only, so a client built on it carries no
// Kubernetes code (gate/client's deps_test.go checks that).
//
// The field names are stable API: the Python client (gate/python) and
// agents in other languages read the same JSON.
package api

// Outcomes. Anything but Allow means the agent must not act.
const (
	Allow = "ALLOW"
	Deny  = "DENY"
)

// Reasons the gate adds to the decision engine's (gate/decide), for
// answers the engine did not make.
const (
	// ReasonBadRequest: the body could not be read; Field names the culprit.
	ReasonBadRequest = "BAD_REQUEST"
	// ReasonChronUnavailable: the decision's Chron row did not commit.
	ReasonChronUnavailable = "CHRON_UNAVAILABLE"
	// ReasonOverloaded: shed before deciding (HTTP 429); retry with backoff.
	ReasonOverloaded = "OVERLOADED"
	// ReasonNotReady: the gate cannot decide yet (starting, or it cannot
	// verify ServiceAccount tokens right now).
	ReasonNotReady = "NOT_READY"
	// ReasonRateLimited: too many requests failed authentication, from this
	// address or with this token id (HTTP 429, Retry-After). An agent
	// presenting its own token is never refused with it.
	ReasonRateLimited = "RATE_LIMITED"
)

// IdempotencyKeyHeader names the request header that makes a
// /v/validate call safe to retry: every try carrying the same key (from
// the same agent) is one decision, with one Chron row, and the gate answers
// each try with that decision, even on another replica. Go's net/http also
// retries a request on a reused connection only when it carries this header.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKeyLen bounds the key; it must be printable ASCII.
const MaxIdempotencyKeyLen = 128

// Reasons for a reused Idempotency-Key (HTTP 409), recorded in Chron as a
// DENY of their own.
const (
	// ReasonIdempotencyConflict: the key already decided a different
	// request (another action or context).
	ReasonIdempotencyConflict = "IDEMPOTENCY_CONFLICT"
	// ReasonIdempotencyExpired: the key's decision is older than the
	// window in which the gate repeats it; a new request needs a new key.
	ReasonIdempotencyExpired = "IDEMPOTENCY_KEY_EXPIRED"
)

// Reasons a client gives itself when it got no usable answer; the gate
// never sends them.
const (
	ReasonUnreachable = "UNREACHABLE"
	ReasonBadResponse = "BAD_RESPONSE"
)

// InitRequest is the body of POST /v/init (it may be empty).
type InitRequest struct {
	SkillVersionID string `json:"skill_version_id"`
}

// InitResponse is what /v/init tells an active agent about itself (HTTP
// 200). An agent that is not Active gets a ValidateResponse with 403
// instead, saying why (AGENT_INACTIVE, NOT_ADMITTED).
type InitResponse struct {
	Agent          string `json:"agent"` // namespace/name
	UID            string `json:"uid"`
	DisplayName    string `json:"display_name,omitempty"`
	Org            string `json:"org"`
	Anchor         string `json:"anchor"`
	Phase          string `json:"phase"`
	Active         bool   `json:"active"`
	Message        string `json:"message,omitempty"` // a presented skill version that is not the pinned one, in words
	SkillVersionID string `json:"skill_version_id"`
	SkillDigest    string `json:"skill_digest,omitempty"`
	// SkillVersionOK says whether the id the client presented is the one
	// the agent is pinned to.
	SkillVersionOK bool `json:"skill_version_ok"`

	// The pinned skill version as published: what the agent runs as.
	Skill            string `json:"skill"`         // the Skill's name
	SkillVersion     int32  `json:"skill_version"` // its version number
	SkillDisplayName string `json:"skill_display_name,omitempty"`
	AgentEmail       string `json:"agent_email"`
	SystemPrompt     string `json:"system_prompt"`

	// The init's Chron row (kind "init").
	DecisionID string `json:"decision_id"`
	ChronID    string `json:"chron_id"`
	Revision   string `json:"revision,omitempty"`
}

// ValidateRequest is the body of POST /v/validate. Context is sent even
// when empty (as null).
type ValidateRequest struct {
	Action         string         `json:"action"`
	Context        map[string]any `json:"context"`
	SkillVersionID string         `json:"skill_version_id"`
	// ApprovalID, on the retry of a call answered APPROVAL_REQUIRED, is
	// that answer's approval_id: once people approved that exact call, it
	// is allowed once.
	ApprovalID string `json:"approval_id,omitempty"`
}

// ValidateResponse is the body of every /v/validate answer, and of a
// refused /v/init (AGENT_INACTIVE, NOT_ADMITTED, UNAUTHENTICATED, ...).
type ValidateResponse struct {
	Outcome        string        `json:"outcome"` // Allow or Deny
	Reason         string        `json:"reason"`
	Message        string        `json:"message"`
	DecisionID     string        `json:"decision_id,omitempty"`
	ChronID        string        `json:"chron_id,omitempty"` // "stream/seq" of the committed row
	Field          string        `json:"field,omitempty"`    // with ReasonBadRequest
	Agent          string        `json:"agent,omitempty"`    // namespace/name
	Anchor         string        `json:"anchor,omitempty"`
	SkillVersionID string        `json:"skill_version_id,omitempty"`
	Policies       []PolicyMatch `json:"policies,omitempty"`
	Audit          []PolicyMatch `json:"audit,omitempty"`       // rules of Audit policies that would have denied; the answer is not theirs
	SkillRules     []string      `json:"skill_rules,omitempty"` // "allowed:<pattern>", "forbidden:<pattern>"
	Revision       string        `json:"revision,omitempty"`    // the snapshot the gate decided on
	// ApprovalID names the ActionApproval of a call a RequireApproval rule
	// holds (with the APPROVAL_* reasons): wait for it, then retry with it.
	ApprovalID string `json:"approval_id,omitempty"`

	// PinnedSkillVersionID is the version the agent is pinned to now. When
	// it differs from the one the client presented (after a re-pin), the
	// client re-inits with it; SkillVersionID is the one the answer was
	// decided under (the previous version, inside the re-pin grace window).
	PinnedSkillVersionID string `json:"pinned_skill_version_id,omitempty"`
}

// PolicyMatch is one policy rule that matched the decision.
type PolicyMatch struct {
	Name    string `json:"name"`
	Version int64  `json:"version"` // the Policy's metadata.generation
	Rule    string `json:"rule"`
	Effect  string `json:"effect"` // "Allow" | "Deny"
}

// Reasons of a call held by a RequireApproval policy rule; all are DENY
// (HTTP 403) until an approved retry is allowed.
const (
	ReasonApprovalRequired = "APPROVAL_REQUIRED" // approval_id names the new request
	ReasonApprovalPending  = "APPROVAL_PENDING"
	ReasonApprovalUsed     = "APPROVAL_USED"
	ReasonApprovalMismatch = "APPROVAL_MISMATCH"
	ReasonApprovalExpired  = "APPROVAL_EXPIRED"
	ReasonApprovalDenied   = "APPROVAL_DENIED"
)

// MaxApprovalIDLen bounds an approval id (a UUID in practice).
const MaxApprovalIDLen = 64

// Approval states GET /v/approvals/{id} answers.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalUsed     = "used" // it already allowed its one call
)

// ApprovalStatus is the body of GET /v/approvals/{id}, asked by the agent
// that made the call (its own token): where the approval of its call is.
type ApprovalStatus struct {
	ApprovalID string   `json:"approval_id"`
	State      string   `json:"state"` // ApprovalPending | ApprovalApproved | ApprovalDenied | ApprovalExpired | ApprovalUsed
	Message    string   `json:"message"`
	Approvers  []string `json:"approvers,omitempty"`
	DeniedBy   string   `json:"denied_by,omitempty"`
	ExpiresAt  string   `json:"expires_at,omitempty"` // RFC 3339
	UsedBy     string   `json:"used_by,omitempty"`    // the decision that used it
}
