package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestApplyFile(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).Build()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Every document is created, empty ones skipped; a second apply is a no-op.
	good := write("good.yaml", `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: one
---
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: two
`)
	for i := 0; i < 2; i++ {
		if err := applyFile(ctx, c, good); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	for _, name := range []string{"one", "two"} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &rbacv1.ClusterRole{}); err != nil {
			t.Errorf("ClusterRole %s: %v", name, err)
		}
	}

	// A broken document is an error naming the file, not a silent stop.
	bad := write("bad.yaml", `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: three
---
kind: ClusterRole
metadata: {name: [unclosed
`)
	err := applyFile(ctx, c, bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("want an error naming %s, got %v", bad, err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "three"}, &rbacv1.ClusterRole{}); err != nil {
		t.Errorf("the document before the broken one was not applied: %v", err)
	}
}
