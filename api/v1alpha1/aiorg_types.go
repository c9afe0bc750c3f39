package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxOrgDepth bounds the AIOrg tree so resolving a path is bounded work.
const MaxOrgDepth = 16

// AIOrg condition reasons.
const (
	ReasonParentNotFound = "ParentNotFound"
	ReasonParentNotReady = "ParentNotReady"
	ReasonCycle          = "Cycle"
	ReasonTooDeep        = "TooDeep"
)

// AIOrgSpec defines an organisational boundary for agents.
type AIOrgSpec struct {
	// DisplayName is the human name shown in tools, e.g. "Engineering".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// Description says what the org is for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// Parent is the name of the parent AIOrg; omit it for a root org.
	// +optional
	Parent OrgName `json:"parent,omitempty"`
}

// AIOrgStatus is the observed state of an AIOrg.
type AIOrgStatus struct {
	// Conditions: Ready is True once the org's path to its root resolves.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Path is the org's place in the tree, root first, joined by "/"
	// (e.g. "engineering/platform").
	// +optional
	// +kubebuilder:validation:MaxLength=1100
	Path string `json:"path,omitempty"`

	// Depth is the number of ancestors (0 for a root org).
	// +optional
	Depth int32 `json:"depth,omitempty"`
}

// AIOrg is the organisational boundary agents belong to: the scope of
// skills, policies and audit visibility.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=aiorg;aiorgs,categories=claiim
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Parent",type=string,JSONPath=`.spec.parent`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.path`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AIOrg struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AIOrgSpec `json:"spec"`
	// +optional
	Status AIOrgStatus `json:"status,omitempty"`
}

// AIOrgList is a list of AIOrgs.
// +kubebuilder:object:root=true
type AIOrgList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AIOrg `json:"items"`
}

func init() {
	register(&AIOrg{}, &AIOrgList{})
}
