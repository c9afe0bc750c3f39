package cli

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// newScheme holds every type the manager and the gate read or write.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(claiimv1.AddToScheme(s))
	return s
}
