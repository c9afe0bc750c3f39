package main

import (
	"errors"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoTestCodeInTheBinary keeps test machinery out of the image: the
// production binary must not link envtest, Ginkgo, Gomega, our test/
// helpers or the standard library's testing package. A failure names the
// import chain that brought the package in.
func TestNoTestCodeInTheBinary(t *testing.T) {
	const root = "github.com/claiim/claiim-operator/cmd/claiim"
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, root).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", root, err, stderr(err))
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	if _, ok := imports[root]; !ok {
		t.Fatalf("go list -deps did not list %s:\n%s", root, out)
	}
	for _, pkg := range slices.Sorted(maps.Keys(imports)) {
		if why := forbidden(pkg); why != "" {
			t.Errorf("claiim links %s (%s): %s", pkg, why, strings.Join(chain(imports, root, pkg), " -> "))
		}
	}
}

func forbidden(pkg string) string {
	switch {
	case pkg == "testing" || strings.HasPrefix(pkg, "testing/"):
		return "the standard library's test support"
	case pkg == "sigs.k8s.io/controller-runtime/pkg/envtest" || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime/pkg/envtest/"):
		return "envtest: kube-apiserver and etcd for tests"
	case strings.HasPrefix(pkg, "github.com/onsi/ginkgo") || strings.HasPrefix(pkg, "github.com/onsi/gomega"):
		return "a test framework"
	case strings.HasPrefix(pkg, "github.com/claiim/claiim-operator/test/"):
		return "our test helpers"
	}
	return ""
}

// chain is a shortest import path from root to pkg (breadth-first).
func chain(imports map[string][]string, root, pkg string) []string {
	from := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == pkg {
			var path []string
			for ; p != ""; p = from[p] {
				path = append([]string{p}, path...)
			}
			return path
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return []string{root, "?", pkg}
}

func stderr(err error) string {
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
