package chron

import "strings"

// Kind says what a Chron row records. Kinds are stable API: readers filter
// on them, so a kind is added, never renamed.
type Kind string

// Every kind CLAIIM writes, in one place.
const (
	// The gate.
	KindDecision           Kind = "decision"            // an agent's request and the answer
	KindDecisionCorrection Kind = "decision.correction" // DENY after an answer whose row timed out
	KindInit               Kind = "init"                // an agent's /v/init
	KindAuthRefused        Kind = "auth.refused"        // unauthenticated requests, counted per address and interval

	// Approvals of exact calls (RequireApproval). The gate's DENY
	// APPROVAL_REQUIRED decision row has the approval's id as its id; the
	// gate's approval.requested row beside it carries what the manager
	// needs to make the ActionApproval; admission records each approval
	// and denial. All of them, and the decision rows of the retries, carry
	// the approval id as request_id.
	KindApprovalRequested Kind = "approval.requested"
	KindApprovalApproved  Kind = "approval.approved"
	KindApprovalDenied    Kind = "approval.denied"
	KindApprovalRefused   Kind = "approval.refused"

	// Agents (the manager).
	KindAgentLifecycle Kind = "agent.lifecycle"
	KindTokenIssued    Kind = "token.issued"
	KindTokenRevoked   Kind = "token.revoked"
	KindTokenRotated   Kind = "token.rotated" // a new token replaced the old one on request
	KindTokenRefused   Kind = "token.refused" // a token Secret the manager did not write was refused

	// PIM (admission and the manager).
	KindPIMRequested Kind = "pim.requested"
	KindPIMApproved  Kind = "pim.approved"
	KindPIMDenied    Kind = "pim.denied"
	KindPIMRevoked   Kind = "pim.revoked"
	KindPIMExpired   Kind = "pim.expired"
	KindPIMDeleted   Kind = "pim.deleted"
	KindPIMRefused   Kind = "pim.refused"

	// Chron itself: a writer refused a record whose id was taken by other
	// content (pre-empted or forged), and the manager's scheduled verify
	// found a problem.
	KindConflict     Kind = "chron.conflict"
	KindVerifyFailed Kind = "chron.verify.failed"

	// Privileged changes (admission).
	KindAdmissionAdmitted Kind = "admission.admitted"
	KindAdmissionRefused  Kind = "admission.refused"
	// An object the manager found changed past admission (the webhooks
	// bypassed or away): once per generation and stamp.
	KindAdmissionBypassed Kind = "admission.bypassed"

	// History (the manager): a generation of an AIOrg, Skill, Policy or
	// Agent seen stored and kept in chron_history, and generations that
	// came and went between two the manager saw (never invented).
	KindObjectChanged Kind = "object.changed"
	KindObjectGap     Kind = "object.gap"
)

// GrantKind is the kind of a CrossOrgGrant's move to phase ("grant.active",
// "grant.expired", "grant.revoked").
func GrantKind(phase string) Kind { return Kind("grant." + strings.ToLower(phase)) }
