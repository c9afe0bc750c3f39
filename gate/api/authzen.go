package api

// The OpenID AuthZEN Authorization API 1.0 evaluation endpoints the gate
// also serves (docs/authzen.md). Each evaluation is one /v/validate
// decision: same authentication, same decision function, same Chron row.

// AuthZEN paths, at the root of the gate's address (the PDP identifier
// is the gate's base URL, without /v).
const (
	AuthZENEvaluationPath  = "/access/v1/evaluation"
	AuthZENEvaluationsPath = "/access/v1/evaluations"
	AuthZENMetadataPath    = "/.well-known/authzen-configuration"
)

// AuthZENSubjectType is the only subject type the gate answers for: the
// authenticated agent itself, with id "<namespace>/<name>".
const AuthZENSubjectType = "agent"

// AuthZENSkillVersionProperty is the subject property carrying the
// agent's SKILL_VERSION_ID (what skill_version_id is to /v/validate).
const AuthZENSkillVersionProperty = "skill_version_id"

// Bounds of a batch (POST /access/v1/evaluations).
const (
	MaxAuthZENEvaluations = 64
	MaxAuthZENBatchBytes  = 256 << 10
)

// The options.evaluations_semantic values of a batch.
const (
	SemanticExecuteAll          = "execute_all" // the default
	SemanticDenyOnFirstDeny     = "deny_on_first_deny"
	SemanticPermitOnFirstPermit = "permit_on_first_permit"
)

// ReasonSubjectMismatch: the AuthZEN subject is not the agent the request
// was authenticated as (HTTP 403; in a batch, that evaluation's false).
const ReasonSubjectMismatch = "SUBJECT_MISMATCH"

// AuthZENEntity is an AuthZEN subject or resource.
type AuthZENEntity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// AuthZENAction is an AuthZEN action; its name is the gate's action.
type AuthZENAction struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// AuthZENEvaluation is the body of POST /access/v1/evaluation, and one
// item of a batch (where any member left out is the batch's default).
type AuthZENEvaluation struct {
	Subject  *AuthZENEntity `json:"subject,omitempty"`
	Action   *AuthZENAction `json:"action,omitempty"`
	Resource *AuthZENEntity `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// AuthZENEvaluationsRequest is the body of POST /access/v1/evaluations:
// defaults, the evaluations, and how to run them. Without evaluations it
// is one evaluation of the defaults, answered as AuthZENDecision.
type AuthZENEvaluationsRequest struct {
	AuthZENEvaluation
	Evaluations []AuthZENEvaluation `json:"evaluations,omitempty"`
	Options     *AuthZENOptions     `json:"options,omitempty"`
}

// AuthZENOptions are a batch's options.
type AuthZENOptions struct {
	EvaluationsSemantic string `json:"evaluations_semantic,omitempty"`
}

// AuthZENDecision is one answer: true only for an ALLOW.
type AuthZENDecision struct {
	Decision bool                    `json:"decision"`
	Context  *AuthZENDecisionContext `json:"context,omitempty"`
}

// AuthZENDecisionContext says why, and which Chron row recorded it.
type AuthZENDecisionContext struct {
	ReasonCode string            `json:"reason_code"` // the gate's reason code (OWN_AIORG, POLICY_DENY, ...)
	DecisionID string            `json:"decision_id,omitempty"`
	ChronID    string            `json:"chron_id,omitempty"`
	Reason     map[string]string `json:"reason,omitempty"` // {"en": the message}
	Field      string            `json:"field,omitempty"`  // with BAD_REQUEST: the member at fault
	// Audit are the rules of Audit policies that would have denied, as in
	// /v/validate's answer: recorded in the row, never the decision's.
	Audit []PolicyMatch `json:"audit,omitempty"`
}

// AuthZENEvaluationsResponse answers a batch, in the order asked; a
// batch stopped by its semantic answers up to the evaluation that
// stopped it.
type AuthZENEvaluationsResponse struct {
	Evaluations []AuthZENDecision `json:"evaluations"`
}

// AuthZENMetadata is the PDP's metadata (GET /.well-known/authzen-configuration).
type AuthZENMetadata struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
}
