package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The Go client goes into agents' programs: it must not drag Kubernetes
// (or anything else) along. It may import the standard library and the
// wire types in gate/api, nothing more.
func TestClientImportsNoKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs 'go list' and needs the go command in PATH: %v", err)
	}
	const self = "github.com/claiim/claiim-operator/gate/client"
	// One line per package: path, standard or not, its imports.
	out, err := exec.Command(goBin, "list", "-deps", "-f", `{{.ImportPath}} {{.Standard}} {{join .Imports " "}}`, self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", self, err, out)
	}
	importedBy := map[string]string{} // package -> one package that imports it
	var deps []string
	standard := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := f[0]
		deps = append(deps, pkg)
		standard[pkg] = f[1] == "true"
		for _, imp := range f[2:] {
			if _, seen := importedBy[imp]; !seen {
				importedBy[imp] = pkg
			}
		}
	}
	chain := func(pkg string) string {
		path := []string{pkg}
		for p := pkg; p != self && importedBy[p] != ""; p = importedBy[p] {
			path = append([]string{importedBy[p]}, path...)
		}
		return strings.Join(path, " -> ")
	}
	for _, pkg := range deps {
		switch {
		case strings.HasPrefix(pkg, "k8s.io/") || strings.HasPrefix(pkg, "sigs.k8s.io/"):
			t.Errorf("gate/client depends on the Kubernetes package %s (%s); keep the client standard-library only", pkg, chain(pkg))
		case !standard[pkg] && pkg != self && pkg != "github.com/claiim/claiim-operator/gate/api":
			t.Errorf("gate/client depends on %s (%s); it may import only the standard library and gate/api", pkg, chain(pkg))
		}
	}
}
