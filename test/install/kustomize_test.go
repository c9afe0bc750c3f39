// Package install checks the kustomize install (config/default) against a
// real kube-apiserver: everything it renders is accepted by a server-side
// dry run.
package install

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/test/testenv"
)

func TestKustomizeDefaultDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	c := testenv.Setup(t, testenv.Options{}).Client

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	if len(objs) < 15 {
		t.Fatalf("config/default rendered only %d objects", len(objs))
	}
	ctx := context.Background()
	kinds := map[string]int{}
	for _, u := range objs { // the namespace for real, so namespaced objects can be dry-run into it
		if u.GetKind() == "Namespace" {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner("test"), client.ForceOwnership); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range objs {
		kinds[u.GetKind()]++
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("test"), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, k := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
		"Role", "RoleBinding", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Job"} {
		if kinds[k] == 0 {
			t.Errorf("config/default renders no %s", k)
		}
	}
}
