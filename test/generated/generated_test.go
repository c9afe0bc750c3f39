// Package generated checks that the committed generated files (deepcopy,
// CRDs, RBAC) are what `make generate manifests` produces, and that the
// check really fails when a type changes without regenerating.
package generated

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/test/testenv"
)

// copyTree copies the project's tracked and untracked-but-not-ignored
// files into a fresh git repository, so the check runs on the tree as it
// stands without touching it.
func copyTree(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("listing files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) { // deleted in the work tree
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(root, f))
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"}} {
		if out, err := exec.Command("git", append([]string{"-C", dst}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	return dst
}

func verify(t *testing.T, dir string) (string, error) {
	t.Helper()
	cg := os.Getenv("CONTROLLER_GEN")
	if cg == "" {
		t.Fatal("CONTROLLER_GEN is not set; run the tests with 'make test', which installs controller-gen and sets it")
	}
	cmd := exec.Command("make", "-s", "verify-generated", "CONTROLLER_GEN="+cg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGeneratedFilesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	dir := copyTree(t)
	if out, err := verify(t, dir); err != nil {
		t.Fatalf("generated files are stale; run 'make generate manifests' and commit:\n%s", out)
	}

	// A type changed without regenerating must fail the check.
	types := filepath.Join(dir, "api", "v1alpha1", "aiorg_types.go")
	b, err := os.ReadFile(types)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), "type AIOrgSpec struct {", "type AIOrgSpec struct {\n\t// Extra is new.\n\t// +optional\n\tExtra string `json:\"extra,omitempty\"`\n", 1)
	if changed == string(b) {
		t.Fatal("could not find AIOrgSpec to change")
	}
	if err := os.WriteFile(types, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Command("git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "change a type").CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	out, err := verify(t, dir)
	if err == nil {
		t.Fatalf("the staleness check passed after a type changed without regenerating:\n%s", out)
	}
	if !strings.Contains(out, "claiim.io_aiorgs.yaml") {
		t.Fatalf("the staleness check failed without naming the stale CRD:\n%s", out)
	}
}
