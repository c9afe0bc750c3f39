package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AgentLifecycle is the lifecycle a person asks for.
// +kubebuilder:validation:Enum=Active;Suspended;Decommissioned
type AgentLifecycle string

const (
	// LifecycleActive lets the agent act once its anchor has accepted it.
	LifecycleActive AgentLifecycle = "Active"
	// LifecycleSuspended stops the agent, reversibly.
	LifecycleSuspended AgentLifecycle = "Suspended"
	// LifecycleDecommissioned stops the agent for good and revokes its token.
	LifecycleDecommissioned AgentLifecycle = "Decommissioned"
)

// AgentPhase is where the agent is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Inactive;Active;Suspended;Decommissioned
type AgentPhase string

const (
	// AgentPending: the org, skill or skill version is not resolved yet.
	AgentPending AgentPhase = "Pending"
	// AgentInactive: the accountability anchor has not accepted the agent.
	AgentInactive  AgentPhase = "Inactive"
	AgentActive    AgentPhase = "Active"
	AgentSuspended AgentPhase = "Suspended"
	// AgentDecommissioned is terminal: the token is revoked for good.
	AgentDecommissioned AgentPhase = "Decommissioned"
)

// Agent condition types and reasons.
const (
	// ConditionTokenIssued is True while the agent holds a usable token.
	ConditionTokenIssued = "TokenIssued"

	ReasonSkillNotFound        = "SkillNotFound"
	ReasonSkillVersionNotFound = "SkillVersionNotFound"
	ReasonSkillOrgMismatch     = "SkillOrgMismatch"
	ReasonAnchorNotAccepted    = "AnchorNotAccepted"
	ReasonSuspended            = "Suspended"
	ReasonDecommissioned       = "Decommissioned"
	ReasonTokenIssued          = "TokenIssued"
	ReasonTokenRevoked         = "TokenRevoked"
	ReasonTokenSecretConflict  = "TokenSecretConflict"
	ReasonTokenSecretMissing   = "TokenSecretMissing"
	ReasonTokenRotated         = "TokenRotated"
)

// SkillRef pins an agent to one published version of a skill.
type SkillRef struct {
	// Name of the Skill.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Version is the published version number the agent is pinned to. The
	// agent stays on it until someone changes this field: no silent
	// upgrades.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Version int32 `json:"version"`
}

// AgentSpec is an AI agent provisioned to act within an org.
// +kubebuilder:validation:XValidation:rule="oldSelf.lifecycle != 'Decommissioned' || self == oldSelf",message="a decommissioned agent is permanent: its spec cannot change; provision a new agent instead"
type AgentSpec struct {
	// Org is the AIOrg the agent belongs to. It cannot change.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="org is immutable; provision a new agent in the other org"
	Org OrgName `json:"org"`

	// DisplayName is the human name, e.g. "Prod Deploy Bot".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// AccountabilityAnchor is the username of the human accountable for
	// every action the agent takes. The agent stays Inactive until that
	// person accepts (annotation claiim.io/anchor-accepted).
	// +required
	AccountabilityAnchor Username `json:"accountabilityAnchor"`

	// SkillRef pins the skill version the agent runs.
	// +required
	SkillRef SkillRef `json:"skillRef"`

	// Lifecycle is Active (default), Suspended (reversible) or
	// Decommissioned (permanent; the token is revoked).
	// +optional
	// +kubebuilder:default=Active
	// +kubebuilder:validation:XValidation:rule="oldSelf != 'Decommissioned' || self == 'Decommissioned'",message="decommissioning is permanent"
	Lifecycle AgentLifecycle `json:"lifecycle,omitempty"`

	// RepinGracePeriodSeconds is how long after a re-pin (a change of
	// skillRef) the gate still accepts the previous skill version, so
	// running pods keep working until they re-init: 600 (10 minutes) by
	// default, 0 to refuse it at once, at most 86400 (a day). During the
	// window a call presenting the previous version is decided under that
	// version's rules, and the answer says so. Unset means 600: no CRD
	// default, so agents stored before this field keep the content their
	// admission stamp covers.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	RepinGracePeriodSeconds *int32 `json:"repinGracePeriodSeconds,omitempty"`

	// ServiceAccountName lets pods running as this ServiceAccount (in the
	// agent's namespace) authenticate to the gate with a projected token.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// AgentToken describes the agent's token without revealing it.
type AgentToken struct {
	// ID is the token's public identifier, part of the token itself; safe
	// to log.
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// Hash is "sha256:<hex>" of the whole token; the gate compares against
	// it. The token itself lives only in the Secret.
	// +kubebuilder:validation:MaxLength=80
	Hash string `json:"hash,omitempty"`
	// SecretName is the Secret in the agent's namespace that holds it.
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// IssuedAt is when the token was created.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`
	// RevokedAt is set when the token was revoked; a revoked token never
	// works again.
	// +optional
	RevokedAt *metav1.Time `json:"revokedAt,omitempty"`
}

// PreviousSkillVersion is a skill version an agent was re-pinned away
// from, and when the gate stops accepting it.
type PreviousSkillVersion struct {
	// Name of the Skill.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Version number.
	Version int32 `json:"version"`
	// ID is the version's id, as agents present it.
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id"`
	// Digest of the version.
	// +optional
	// +kubebuilder:validation:MaxLength=80
	Digest string `json:"digest,omitempty"`
	// Until is when the grace window ends: from then on the gate answers
	// SKILL_VERSION_MISMATCH to this version.
	Until metav1.Time `json:"until"`
}

// DefaultRepinGracePeriodSeconds and MaxRepinGracePeriodSeconds bound
// spec.repinGracePeriodSeconds.
const (
	DefaultRepinGracePeriodSeconds = 600
	MaxRepinGracePeriodSeconds     = 86400
)

// RepinGracePeriod is how long the previous skill version stays accepted
// after a re-pin (the default when unset).
func (a *Agent) RepinGracePeriod() time.Duration {
	s := int32(DefaultRepinGracePeriodSeconds)
	if p := a.Spec.RepinGracePeriodSeconds; p != nil {
		s = min(max(*p, 0), MaxRepinGracePeriodSeconds)
	}
	return time.Duration(s) * time.Second
}

// AgentStatus is the observed state of an Agent.
type AgentStatus struct {
	// Conditions: Ready (the agent can act), TokenIssued.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Inactive, Active, Suspended or Decommissioned.
	// +optional
	Phase AgentPhase `json:"phase,omitempty"`

	// SkillVersionID is the id of the pinned skill version, the value the
	// agent presents to the gate.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	SkillVersionID string `json:"skillVersionID,omitempty"`

	// SkillDigest is the digest of the pinned skill version.
	// +optional
	// +kubebuilder:validation:MaxLength=80
	SkillDigest string `json:"skillDigest,omitempty"`

	// PreviousSkillVersion is the version the agent was pinned to before
	// its last re-pin, which the gate accepts until its window ends
	// (spec.repinGracePeriodSeconds). Covered by the attestation.
	// +optional
	PreviousSkillVersion *PreviousSkillVersion `json:"previousSkillVersion,omitempty"`

	// Token describes the agent's token (never the token itself).
	// +optional
	Token *AgentToken `json:"token,omitempty"`

	// DecommissionedAt is when the agent was decommissioned.
	// +optional
	DecommissionedAt *metav1.Time `json:"decommissionedAt,omitempty"`

	// Attestation is the manager's signature over phase, observed
	// generation and token (gate/attest). The gate trusts none of them
	// without it: anyone allowed to write agents/status could set them.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Attestation string `json:"attestation,omitempty"`
}

// Agent is an AI agent provisioned to act in an org under a pinned skill
// version, with a human accountability anchor and its own token.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=agent,categories=claiim
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Org",type=string,JSONPath=`.spec.org`
// +kubebuilder:printcolumn:name="Skill",type=string,JSONPath=`.spec.skillRef.name`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.spec.skillRef.version`
// +kubebuilder:printcolumn:name="Anchor",type=string,JSONPath=`.spec.accountabilityAnchor`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Skill Version ID",type=string,JSONPath=`.status.skillVersionID`,priority=10
// +kubebuilder:printcolumn:name="Token ID",type=string,JSONPath=`.status.token.id`,priority=10
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Agent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentSpec `json:"spec"`
	// +optional
	Status AgentStatus `json:"status,omitempty"`
}

// AgentList is a list of Agents.
// +kubebuilder:object:root=true
type AgentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Agent `json:"items"`
}

func init() {
	register(&Agent{}, &AgentList{})
}
