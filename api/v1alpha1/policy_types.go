package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Policy condition reasons.
const (
	ReasonInvalidRule = "InvalidRule"
)

// PolicyEffect is what a matching rule decides.
// +kubebuilder:validation:Enum=Allow;Deny;RequireApproval
type PolicyEffect string

const (
	PolicyEffectAllow PolicyEffect = "Allow"
	PolicyEffectDeny  PolicyEffect = "Deny"
	// PolicyEffectRequireApproval makes an action that is otherwise
	// allowed wait for a person's yes for that exact call (ActionApproval).
	// It never allows by itself; a Deny still wins.
	PolicyEffectRequireApproval PolicyEffect = "RequireApproval"
)

// Approval bounds of a RequireApproval rule.
const (
	DefaultApprovalTTLSeconds = 3600
	MaxApprovalTTLSeconds     = 86400
)

// AgentSelector chooses the agents a rule applies to. Empty means every
// agent in the policy's scope.
// +kubebuilder:validation:XValidation:rule="!(has(self.names) && has(self.selector))",message="set names or selector, not both"
type AgentSelector struct {
	// Names are agents as "namespace/name".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Names []string `json:"names,omitempty"`

	// Selector matches agents by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// PolicyRule is one rule of a policy.
// +kubebuilder:validation:XValidation:rule="self.effect == 'RequireApproval' || (!has(self.approvalsRequired) && !has(self.approvalTTLSeconds))",message="approvalsRequired and approvalTTLSeconds are for RequireApproval rules only"
type PolicyRule struct {
	// Name identifies the rule in decisions and Chron records.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Actions are the action patterns the rule covers.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Actions []ActionPattern `json:"actions"`

	// Effect is Allow, Deny or RequireApproval. A matching Deny beats
	// everything; RequireApproval turns an ALLOW into DENY
	// APPROVAL_REQUIRED until people approve that exact call.
	// +required
	Effect PolicyEffect `json:"effect"`

	// ApprovalsRequired is how many distinct people must approve a call
	// under a RequireApproval rule (default 1). With 2, the agent's
	// accountability anchor alone is not enough.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2
	ApprovalsRequired int32 `json:"approvalsRequired,omitempty"`

	// ApprovalTTLSeconds is how long an approval request stays open and,
	// once approved, usable (default 3600, at most 86400).
	// +optional
	// +kubebuilder:validation:Minimum=60
	// +kubebuilder:validation:Maximum=86400
	ApprovalTTLSeconds int32 `json:"approvalTTLSeconds,omitempty"`

	// Agents the rule applies to; omit for all agents.
	// +optional
	Agents *AgentSelector `json:"agents,omitempty"`

	// Condition is an optional CEL expression over the request that must
	// be true for the rule to match. Variables: `action` (string),
	// `context` (map), `agent` (map with name, namespace, org, labels).
	// A Deny or RequireApproval rule whose condition fails to evaluate
	// counts as matching.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Condition string `json:"condition,omitempty"`
}

// PolicySpec is an org-wide set of rules the gate enforces regardless of
// what a Skill says.
type PolicySpec struct {
	// Org scopes the policy to one AIOrg and its descendants; omit it for
	// every org.
	// +optional
	Org OrgName `json:"org,omitempty"`

	// DisplayName is the human name, e.g. "No production deploys".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// Description says why the policy exists.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// Enforcement is Enforce (when empty) or Audit. An Audit policy is
	// evaluated on every decision and a rule that would deny is recorded
	// in Chron and the gate's answer as a would-deny, but it never changes
	// the answer: try a new Deny policy in Audit before enforcing it. No
	// schema default, so existing objects' stored form stays as it was.
	// +optional
	Enforcement PolicyEnforcement `json:"enforcement,omitempty"`

	// Rules of the policy.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Rules []PolicyRule `json:"rules"`
}

// PolicyEnforcement is whether a policy's rules decide or are only
// recorded.
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyEnforcement string

const (
	// PolicyEnforce: matching rules decide (the default, also when empty).
	PolicyEnforce PolicyEnforcement = "Enforce"
	// PolicyAudit: rules are evaluated and a would-be deny is recorded in
	// Chron and in the gate's answer, but no rule changes the answer.
	PolicyAudit PolicyEnforcement = "Audit"
)

// Audit reports whether the policy only records what it would deny.
func (p *Policy) Audit() bool { return p.Spec.Enforcement == PolicyAudit }

// PolicyStatus is the observed state of a Policy.
type PolicyStatus struct {
	// Conditions: Ready is True when every rule compiled and the org exists.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes; the gate
	// records it as the policy version.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Rules is the number of rules that compiled.
	// +optional
	Rules int32 `json:"rules,omitempty"`
}

// Policy is an org-wide rule set enforcing ALLOW or DENY. DENY policies
// take priority over everything.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pol,categories=claiim
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Org",type=string,JSONPath=`.spec.org`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Rules",type=integer,JSONPath=`.status.rules`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.metadata.generation`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Policy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec PolicySpec `json:"spec"`
	// +optional
	Status PolicyStatus `json:"status,omitempty"`
}

// PolicyList is a list of Policies.
// +kubebuilder:object:root=true
type PolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Policy `json:"items"`
}

func init() {
	register(&Policy{}, &PolicyList{})
}
