// Package v1alpha1 holds the claiim.io/v1alpha1 API: the resources platform
// engineers declare to govern AI agents.
//
// It imports apimachinery and the standard library only, so any program
// can use the types without pulling in controller-runtime.
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

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// known is filled by each kind's init (register).
	known []runtime.Object
)

// register adds a kind and its list to the types AddToScheme installs.
func register(objs ...runtime.Object) { known = append(known, objs...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, known...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
