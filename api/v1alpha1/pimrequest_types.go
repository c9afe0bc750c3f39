package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PIM bounds. The default elevation is the seed's one hour.
const (
	DefaultPIMDuration = "1h"
	MaxPIMDuration     = "8h"
	// DefaultPIMPendingTTL is how long a request waits for its approvals
	// before it lapses (the manager's --pim-pending-ttl).
	DefaultPIMPendingTTL = 24 * time.Hour
	// MaxPIMApprovalsRequired bounds spec.approvalsRequired, and so the
	// approvals admission records on one request.
	MaxPIMApprovalsRequired = 5
)

// Annotations with which a second person decides a PIMRequest; the value is
// their comment. Admission stamps who set them from the authenticated user
// into the *-by annotations, which nobody else can write.
const (
	AnnotationApprove = "claiim.io/approve"
	AnnotationDeny    = "claiim.io/deny"
	AnnotationRevoke  = "claiim.io/revoke"

	AnnotationApprovedBy = "claiim.io/approved-by"
	AnnotationApprovedAt = "claiim.io/approved-at"
	AnnotationDeniedBy   = "claiim.io/denied-by"
	AnnotationRevokedBy  = "claiim.io/revoked-by"
	// AnnotationApprovalAttestation is admission's signature over the
	// approval it checked and stamped (gate/attest); an approval without a
	// valid one elevates nobody, however its other annotations got there.
	AnnotationApprovalAttestation = "claiim.io/approval-attestation"
	// AnnotationApprovals lists every approval admission checked, one
	// PIMApprovalRecord each (JSON), each signed by the manager. A request
	// that needs more than one approver turns Active only when enough
	// distinct, signed approvers are in it; until then admission consumes
	// each claiim.io/approve into this list, so the next approver can set
	// claiim.io/approve again.
	AnnotationApprovals = "claiim.io/approvals"
)

// PIMApprovalRecord is one approval in AnnotationApprovals: who approved
// (from the authenticated user), when, and the manager's signature over
// both and the request (gate/attest.PIMApprovalEntry).
// +kubebuilder:object:generate=false
type PIMApprovalRecord struct {
	By          Username `json:"by"`
	At          string   `json:"at"`
	Attestation string   `json:"attestation"`
	// Comment is the approver's claiim.io/approve, cut to
	// MaxPIMApprovalComment characters (Chron keeps it whole).
	Comment string `json:"comment,omitempty"`
}

// MaxPIMApprovalComment bounds a comment kept in AnnotationApprovals.
const MaxPIMApprovalComment = 256

// Condition reasons of a PIMRequest besides its phases.
const (
	// ReasonPendingExpired: nobody approved the request (enough times)
	// within the manager's --pim-pending-ttl; Chron records it as
	// PIM_PENDING_EXPIRED.
	ReasonPendingExpired = "PendingExpired"
)

// PIMPhase is where an elevation is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Active;Denied;Expired;Revoked
type PIMPhase string

const (
	PIMPending PIMPhase = "Pending"
	PIMActive  PIMPhase = "Active"
	PIMDenied  PIMPhase = "Denied"
	PIMExpired PIMPhase = "Expired"
	PIMRevoked PIMPhase = "Revoked"
)

// PIMRequestSpec asks for an elevated session. It cannot change once made;
// approval is given by a second person through annotations.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a PIMRequest cannot be changed once made; create a new one"
type PIMRequestSpec struct {
	// Reason says why the elevation is needed, e.g. "Initial onboarding --
	// setting up first agent fleet".
	// +required
	// +kubebuilder:validation:MinLength=10
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// Duration of the session once approved; 1h by default, at most 8h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('8h')",message="duration must be between 1m and 8h"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// Subject is the user the session elevates: the requester by default,
	// or e.g. a GitOps controller's ServiceAccount
	// ("system:serviceaccount:argocd:argocd-application-controller").
	// +optional
	Subject Username `json:"subject,omitempty"`

	// ApprovalsRequired is how many distinct people other than the
	// requester and the subject must approve before the session starts:
	// 1 by default, at most 5.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	ApprovalsRequired int32 `json:"approvalsRequired,omitempty"`

	// Requester is stamped by admission from the authenticated user; a
	// value in the request body is ignored.
	// +optional
	Requester Username `json:"requester,omitempty"`
}

// PIMRequestStatus is the observed state of a PIMRequest.
type PIMRequestStatus struct {
	// Conditions: Ready is True while the session is Active.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Active, Denied, Expired or Revoked.
	// +optional
	Phase PIMPhase `json:"phase,omitempty"`

	// Requester who asked for the session.
	// +optional
	Requester Username `json:"requester,omitempty"`

	// Subject the session elevates.
	// +optional
	Subject Username `json:"subject,omitempty"`

	// Approvals are the approvals admission recorded and the manager's
	// signature covers, in order; the session starts with the one that
	// makes spec.approvalsRequired.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	Approvals []PIMApproval `json:"approvals,omitempty"`

	// PendingExpiresAt is when the request lapses unless approved by then
	// (the manager's --pim-pending-ttl after it was made).
	// +optional
	PendingExpiresAt *metav1.Time `json:"pendingExpiresAt,omitempty"`

	// ApprovedBy is the person whose approval started the session (or who
	// denied it).
	// +optional
	ApprovedBy Username `json:"approvedBy,omitempty"`

	// ApprovedAt is when it was approved.
	// +optional
	ApprovedAt *metav1.Time `json:"approvedAt,omitempty"`

	// ExpiresAt is when an approved session stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// WhatIf is, for each change made under the session, which of the
	// agents' recent decisions it would answer differently (a replay of
	// Chron through the gate's decision function), newest last; the
	// oldest drop off past MaxPIMWhatIf. The manager writes it when it
	// admits the change.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	WhatIf []PIMWhatIf `json:"whatIf,omitempty"`
}

// MaxPIMWhatIf bounds status.whatIf (its MaxItems says the same).
const MaxPIMWhatIf = 16

// PIMWhatIf is the what-if of one change made under a PIM session.
type PIMWhatIf struct {
	// Object is the change: "update Policy/no-prod-deploys".
	// +kubebuilder:validation:MaxLength=512
	Object string `json:"object"`
	// Summary says which recent decisions would flip, by agent and
	// action, how many cannot be decided, and whether it sampled.
	// +kubebuilder:validation:MaxLength=2048
	Summary string `json:"summary"`
	// At is when the what-if ran.
	At metav1.Time `json:"at"`
	// Changed is how many replayed requests would get another answer.
	// +optional
	Changed int32 `json:"changed,omitempty"`
	// Undecidable is how many could not be replayed faithfully.
	// +optional
	Undecidable int32 `json:"undecidable,omitempty"`
	// Sampled is true when not every request of the window was replayed.
	// +optional
	Sampled bool `json:"sampled,omitempty"`
}

// PIMApproval is one person's approval of a PIMRequest.
type PIMApproval struct {
	// By is the approver, as the apiserver authenticated them.
	By Username `json:"by"`
	// At is when admission recorded the approval.
	At metav1.Time `json:"at"`
}

// PIMRequest is a request for an elevated control-plane session; a second
// person must approve it. Two-person control is not optional.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pim,categories=claiim
// +kubebuilder:printcolumn:name="Requester",type=string,JSONPath=`.status.requester`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.status.subject`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Approved By",type=string,JSONPath=`.status.approvedBy`
// +kubebuilder:printcolumn:name="Required",type=integer,JSONPath=`.spec.approvalsRequired`,priority=10
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PIMRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec PIMRequestSpec `json:"spec"`
	// +optional
	Status PIMRequestStatus `json:"status,omitempty"`
}

// PIMRequestList is a list of PIMRequests.
// +kubebuilder:object:root=true
type PIMRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PIMRequest `json:"items"`
}

func init() {
	register(&PIMRequest{}, &PIMRequestList{})
}
