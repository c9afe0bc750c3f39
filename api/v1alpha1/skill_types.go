package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds of a Skill.
const (
	MaxSkillVersions   = 64
	MaxActionsPerList  = 128
	MaxSystemPromptLen = 32768
)

// SkillVersion is one published version of a skill's rulebook. A published
// version never changes: the apiserver refuses edits (CEL transition rule,
// correlated by version number) and the admission webhook refuses them too.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a published skill version is immutable; append a new version instead"
type SkillVersion struct {
	// Version is the version number, 1 for the first; versions are
	// numbered 1..n without gaps.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	Version int32 `json:"version"`

	// AgentEmail is the identity the agent acts as.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	AgentEmail string `json:"agentEmail"`

	// SystemPrompt is the agent's system prompt for this version.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	SystemPrompt string `json:"systemPrompt,omitempty"`

	// AllowedActions are the action patterns the skill permits.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=128
	AllowedActions []ActionPattern `json:"allowedActions,omitempty"`

	// ForbiddenActions are the action patterns the skill forbids; they win
	// over AllowedActions.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=128
	ForbiddenActions []ActionPattern `json:"forbiddenActions,omitempty"`
}

// SkillSpec is a versioned rulebook belonging to one AIOrg.
// +kubebuilder:validation:XValidation:rule="self.versions.map(v, v.version).isSorted() && self.versions[0].version == 1 && self.versions[size(self.versions)-1].version == size(self.versions)",message="versions must be numbered 1, 2, 3, ... in order, without gaps"
type SkillSpec struct {
	// Org is the AIOrg the skill belongs to. It cannot change.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="org is immutable"
	Org OrgName `json:"org"`

	// DisplayName is the human name, e.g. "Deploy Bot".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// Description says what the skill is for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// Versions are the published versions, append-only: a version, once
	// published, can be neither edited nor removed.
	// +required
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="size(self) >= size(oldSelf)",message="published skill versions cannot be removed"
	Versions []SkillVersion `json:"versions"`
}

// PublishedSkillVersion identifies one published version.
type PublishedSkillVersion struct {
	// Version is the version number.
	Version int32 `json:"version"`
	// ID is the stable skill version id agents present to the gate:
	// "<skill>-v<version>-<first 8 hex digits of the digest>".
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id"`
	// Digest is "sha256:<hex>" of the version's canonical JSON body.
	// +kubebuilder:validation:MaxLength=80
	Digest string `json:"digest"`
}

// SkillStatus is the observed state of a Skill.
type SkillStatus struct {
	// Conditions: Ready is True when the org exists and every version has
	// an id.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Versions lists every published version with its id and digest.
	// +optional
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MaxItems=64
	Versions []PublishedSkillVersion `json:"versions,omitempty"`

	// LatestVersion is the highest published version number.
	// +optional
	LatestVersion int32 `json:"latestVersion,omitempty"`

	// LatestVersionID is the id of the latest version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	LatestVersionID string `json:"latestVersionID,omitempty"`
}

// Skill is the versioned rulebook for an agent: the email identity it acts
// as, its system prompt, allowed and forbidden actions.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=skill,categories=claiim
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Org",type=string,JSONPath=`.spec.org`
// +kubebuilder:printcolumn:name="Latest",type=integer,JSONPath=`.status.latestVersion`
// +kubebuilder:printcolumn:name="Latest ID",type=string,JSONPath=`.status.latestVersionID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Skill struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec SkillSpec `json:"spec"`
	// +optional
	Status SkillStatus `json:"status,omitempty"`
}

// Version returns the published version n, or nil.
func (s *Skill) Version(n int32) *SkillVersion {
	for i := range s.Spec.Versions {
		if s.Spec.Versions[i].Version == n {
			return &s.Spec.Versions[i]
		}
	}
	return nil
}

// SkillList is a list of Skills.
// +kubebuilder:object:root=true
type SkillList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Skill `json:"items"`
}

func init() {
	register(&Skill{}, &SkillList{})
}
