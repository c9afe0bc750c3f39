package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations of an ActionApproval. People set claiim.io/approve (a
// comment; admission consumes it, so a second approver sets it again) or
// claiim.io/deny (the reason; final). Admission stamps the rest from the
// authenticated user and signs the result: nobody else can write them, and
// the gate counts an approval only under the manager's signature.
const (
	// AnnotationApprovers is the JSON list of the distinct usernames who
	// approved, in order.
	AnnotationApprovers = "claiim.io/approvers"
	// AnnotationRequestAttestation is the manager's signature over the
	// spec it copied from the gate's Chron row: an ActionApproval someone
	// else wrote can never be approved.
	AnnotationRequestAttestation = "claiim.io/request-attestation"
)

// ApprovalPhase is where an approval request is.
// +kubebuilder:validation:Enum=Pending;Approved;Denied;Expired
type ApprovalPhase string

const (
	ApprovalPending  ApprovalPhase = "Pending"
	ApprovalApproved ApprovalPhase = "Approved"
	ApprovalDenied   ApprovalPhase = "Denied"
	ApprovalExpired  ApprovalPhase = "Expired"
)

// ActionApprovalSpec is the exact call a person approves, copied by the
// manager from the gate's Chron row. It never changes.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an ActionApproval names one exact call and cannot be changed"
type ActionApprovalSpec struct {
	// Agent is the agent's name (in the approval's namespace).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Agent string `json:"agent"`

	// AgentUID is the agent's UID: a recreated agent of the same name is
	// another agent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	AgentUID string `json:"agentUID"`

	// AgentServiceAccount is the agent's ServiceAccount, which can never
	// approve its own calls.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AgentServiceAccount string `json:"agentServiceAccount,omitempty"`

	// Org is the agent's AIOrg.
	// +optional
	Org OrgName `json:"org,omitempty"`

	// Anchor is the agent's accountability anchor when it asked.
	// +optional
	Anchor Username `json:"anchor,omitempty"`

	// Requester is the identity that made the call (the agent's token or
	// ServiceAccount); it cannot approve it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Requester string `json:"requester,omitempty"`

	// Action is the action asked for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Action string `json:"action"`

	// ContextDigest is "sha256:<hex>" of the request context's canonical
	// JSON: the approval holds for that context only.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	ContextDigest string `json:"contextDigest"`

	// Context is the request context as Chron recorded it (secrets
	// masked, large values cut), for the people who decide.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Context string `json:"context,omitempty"`

	// SkillVersionID is the skill version the agent presented.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	SkillVersionID string `json:"skillVersionID"`

	// Policy and Rule name the RequireApproval rule that asked for it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Policy string `json:"policy,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Rule string `json:"rule,omitempty"`

	// ApprovalsRequired is how many distinct people must approve.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2
	ApprovalsRequired int32 `json:"approvalsRequired"`

	// RequestedAt is when the gate answered APPROVAL_REQUIRED.
	// +required
	RequestedAt metav1.Time `json:"requestedAt"`

	// ExpiresAt ends the request: it must be approved and used before.
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`

	// ChronID is the "stream/seq" of the gate's approval.requested row.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ChronID string `json:"chronID,omitempty"`
}

// ActionApproval asks people to approve one exact agent call that a
// RequireApproval policy rule holds back. Its name is the approval id the
// agent retries with.
//
// +kubebuilder:object:root=true
// It has no status: its state is its signed annotations and the clock
// (State), which is all the gate trusts.
//
// +kubebuilder:resource:scope=Namespaced,shortName=aap,categories=claiim
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Required",type=integer,JSONPath=`.spec.approvalsRequired`
// +kubebuilder:printcolumn:name="Approvers",type=string,JSONPath=`.metadata.annotations.claiim\.io/approvers`
// +kubebuilder:printcolumn:name="Denied By",type=string,JSONPath=`.metadata.annotations.claiim\.io/denied-by`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ActionApproval struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ActionApprovalSpec `json:"spec"`
}

// ActionApprovalList is a list of ActionApprovals.
// +kubebuilder:object:root=true
type ActionApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ActionApproval `json:"items"`
}

func init() {
	register(&ActionApproval{}, &ActionApprovalList{})
}
