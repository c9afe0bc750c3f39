// Package upgrade upgrades an install of the first release to this tree
// under traffic, the way `helm upgrade` does it, and holds it to what
// docs/install.md ("Upgrading from the first release") promises: the gate
// keeps answering and no ALLOW lacks its Chron row, the first release's
// rows still verify beside the new keyed ones, and the agent's unsigned
// token is rotated with a stated notice.
//
// Real parts: both releases' claiim binaries (the first built from git
// history), an envtest kube-apiserver with RBAC and the webhooks as the
// first release's local control plane installed them, PostgreSQL
// (test/pgtest), and the Go client as the load. No kubelet: the test runs
// the manager and gate processes and rolls them as a Deployment would.
package upgrade

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claiim/claiim-operator/test/testenv"
)

// firstRelease is the commit of the first release (wave 1): main.go at the
// root, `claiim manager|gate|chron`, Chron format v1, unsigned tokens.
const firstRelease = "b457a29"

var (
	newBinary string // this tree's cmd/claiim
	oldBinary string // the first release's claiim
	oldTree   string // the first release's files: CRDs, webhooks, RBAC, samples
)

// TestMain builds both binaries once, side by side.
func TestMain(m *testing.M) {
	flag.Parse()
	logf.SetLogger(logr.Discard()) // envtest's and client-go's chatter; the processes log to files
	klog.SetLogger(logr.Discard())
	if testing.Short() {
		fmt.Println("skipping test/upgrade in -short mode: it needs envtest, PostgreSQL and two builds")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "claiim-upgrade-")
	if err != nil {
		panic(err)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "test/upgrade:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	newBinary, oldBinary, oldTree = filepath.Join(dir, "claiim"), filepath.Join(dir, "claiim-first"), filepath.Join(dir, "first")
	root := testenv.RepoRoot()
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", firstRelease+"^{commit}").CombinedOutput(); err != nil {
		shallow, _ := exec.Command("git", "-C", root, "rev-parse", "--is-shallow-repository").Output()
		return fmt.Errorf("the first release's commit %s is not in this clone (git: %v %s; shallow: %s); the upgrade test builds it "+
			"from history: run `git fetch --unshallow` (or clone without --depth) and try again",
			firstRelease, err, strings.TrimSpace(string(out)), strings.TrimSpace(string(shallow)))
	}
	if err := os.MkdirAll(oldTree, 0o755); err != nil {
		return err
	}
	extract := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, firstRelease, oldTree)
	if out, err := extract.CombinedOutput(); err != nil {
		return fmt.Errorf("extracting %s: %w\n%s", firstRelease, err, out)
	}
	done := make(chan error, 2)
	for _, b := range []struct{ dir, out, pkg string }{{root, newBinary, "./cmd/claiim"}, {oldTree, oldBinary, "."}} {
		go func() {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				done <- fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, b.dir, err, out)
				return
			}
			done <- nil
		}()
	}
	return errors.Join(<-done, <-done)
}
