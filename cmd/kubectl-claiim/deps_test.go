package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTestCodeInThePlugin: the plugin ships to people's machines, so it
// links no test machinery (the same rule as cmd/claiim's deps test).
func TestNoTestCodeInThePlugin(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/claiim/claiim-operator/cmd/kubectl-claiim").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || strings.HasPrefix(pkg, "testing/") || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime/pkg/envtest") ||
			strings.HasPrefix(pkg, "github.com/onsi/") || strings.HasPrefix(pkg, "github.com/claiim/claiim-operator/test/") {
			t.Errorf("kubectl-claiim links %s (find why: go mod why -m or go list -deps -f '{{.ImportPath}} {{.Imports}}')", pkg)
		}
	}
}
