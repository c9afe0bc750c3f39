package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/claiim/claiim-operator/test/testenv"
)

func TestApplyFileCreatesEveryDocument(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).Build()
	for i := 0; i < 2; i++ { // the second time is a no-op
		if err := testenv.ApplyFile(context.Background(), c, filepath.Join(testenv.RepoRoot(), "config", "rbac", "user_roles.yaml")); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	roles := &rbacv1.ClusterRoleList{}
	if err := c.List(context.Background(), roles); err != nil {
		t.Fatal(err)
	}
	if len(roles.Items) != 6 {
		t.Fatalf("created %d ClusterRoles from user_roles.yaml, want 6 (admin, approver, action-approver, grant-approver, viewer, auditor)", len(roles.Items))
	}
}

// A broken document used to end the file silently, leaving the objects
// after it out; now it is an error.
func TestApplyFileRefusesABrokenDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	body := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: first\n---\nkind: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: last\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).Build()
	err := testenv.ApplyFile(context.Background(), c, path)
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("ApplyFile of a broken document: %v, want an error naming the file", err)
	}
}
