package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxGrantDuration bounds how long a cross-org grant may live.
const MaxGrantDuration = "2160h" // 90 days

// Annotations with which each side's admin approves a grant, and those
// admission stamps with who did (nobody else can write them).
const (
	AnnotationApproveGranting  = "claiim.io/approve-granting"
	AnnotationApproveReceiving = "claiim.io/approve-receiving"

	AnnotationGrantingApprovedBy  = "claiim.io/granting-approved-by"
	AnnotationReceivingApprovedBy = "claiim.io/receiving-approved-by"
)

// GrantPhase is where a grant is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Active;Expired;Revoked
type GrantPhase string

const (
	GrantPending GrantPhase = "Pending"
	GrantActive  GrantPhase = "Active"
	GrantExpired GrantPhase = "Expired"
	GrantRevoked GrantPhase = "Revoked"
)

// CrossOrgGrantSpec lets agents of one org use skills of another.
// +kubebuilder:validation:XValidation:rule="self.grantingOrg != self.receivingOrg",message="grantingOrg and receivingOrg must differ; an org's own skills need no grant"
// +kubebuilder:validation:XValidation:rule="has(self.duration) != has(self.expiresAt)",message="a grant is time-bound: set exactly one of duration or expiresAt"
// +kubebuilder:validation:XValidation:rule="self.grantingOrg == oldSelf.grantingOrg && self.receivingOrg == oldSelf.receivingOrg && self.skills == oldSelf.skills && has(self.duration) == has(oldSelf.duration) && (!has(self.duration) || self.duration == oldSelf.duration) && has(self.expiresAt) == has(oldSelf.expiresAt) && (!has(self.expiresAt) || self.expiresAt == oldSelf.expiresAt)",message="a grant cannot be changed once made, only revoked; create a new grant"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revoked) || !oldSelf.revoked || (has(self.revoked) && self.revoked)",message="a revoked grant stays revoked"
type CrossOrgGrantSpec struct {
	// GrantingOrg owns the skills being shared.
	// +required
	GrantingOrg OrgName `json:"grantingOrg"`

	// ReceivingOrg is the org whose agents may use them.
	// +required
	ReceivingOrg OrgName `json:"receivingOrg"`

	// Skills are the names of GrantingOrg's skills that are shared.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	Skills []string `json:"skills"`

	// Reason says why the grant is needed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`

	// Duration of the grant from its activation; at most 90 days.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('2160h')",message="duration must be between 1m and 2160h (90 days)"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// ExpiresAt is a fixed end of the grant. The grant ends 90 days after
	// its activation at the latest, whatever this says.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// Revoked ends the grant at once, for good.
	// +optional
	Revoked bool `json:"revoked,omitempty"`
}

// CrossOrgGrantStatus is the observed state of a CrossOrgGrant.
type CrossOrgGrantStatus struct {
	// Conditions: Ready is True while the grant is Active.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Active, Expired or Revoked.
	// +optional
	Phase GrantPhase `json:"phase,omitempty"`

	// GrantingApprovedBy is the granting org's admin who approved.
	// +optional
	GrantingApprovedBy Username `json:"grantingApprovedBy,omitempty"`

	// ReceivingApprovedBy is the receiving org's admin who approved.
	// +optional
	ReceivingApprovedBy Username `json:"receivingApprovedBy,omitempty"`

	// ActivatedAt is when both sides had approved.
	// +optional
	ActivatedAt *metav1.Time `json:"activatedAt,omitempty"`

	// ExpiresAt is when the grant stops counting.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// Attestation is the manager's signature over phase and expiresAt
	// (gate/attest). Neither counts without it: anyone allowed to write
	// crossorggrants/status could set them.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Attestation string `json:"attestation,omitempty"`
}

// CrossOrgGrant lets agents of one AIOrg use skills of another. Both sides
// approve; it is time-bound and revocable.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=grant;cog,categories=claiim
// +kubebuilder:printcolumn:name="Granting",type=string,JSONPath=`.spec.grantingOrg`
// +kubebuilder:printcolumn:name="Receiving",type=string,JSONPath=`.spec.receivingOrg`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Skills",type=string,JSONPath=`.spec.skills`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CrossOrgGrant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec CrossOrgGrantSpec `json:"spec"`
	// +optional
	Status CrossOrgGrantStatus `json:"status,omitempty"`
}

// CrossOrgGrantList is a list of CrossOrgGrants.
// +kubebuilder:object:root=true
type CrossOrgGrantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CrossOrgGrant `json:"items"`
}

func init() {
	register(&CrossOrgGrant{}, &CrossOrgGrantList{})
}
