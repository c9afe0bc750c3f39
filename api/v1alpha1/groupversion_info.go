// Package v1alpha1 holds the claiim.io/v1alpha1 API: the resources platform
// engineers declare to govern AI agents.
//
// +kubebuilder:object:generate=true
// +groupName=claiim.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every CLAIIM resource.
	GroupVersion = schema.GroupVersion{Group: "claiim.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme. It is
	// apimachinery's, so the API imports nothing beyond apimachinery and
	// the standard library.
	SchemeBuilder runtime.SchemeBuilder

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// register adds a kind's types to SchemeBuilder; each kind's file calls
// it from init.
func register(objs ...runtime.Object) {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objs...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
}
