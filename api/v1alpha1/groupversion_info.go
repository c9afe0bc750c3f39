// Package v1alpha1 holds the claiim.io/v1alpha1 API: the resources platform
// engineers declare to govern AI agents.
//
// +kubebuilder:object:generate=true
// +groupName=claiim.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every CLAIIM resource.
	GroupVersion = schema.GroupVersion{Group: "claiim.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
