// Package docs checks that the guides name what exists.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/test/testenv"
)

// Every repository path docs/architecture.md names in backticks exists, so
// the page cannot drift from the tree unnoticed when files move.
func TestArchitecturePathsExist(t *testing.T) {
	root := testenv.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	top := map[string]bool{"api": true, "cmd": true, "internal": true, "controllers": true, "gate": true,
		"test": true, "hack": true, "config": true, "charts": true, "docs": true}
	checked := 0
	for _, m := range regexp.MustCompile("`([^`\\s]+)`").FindAllStringSubmatch(string(b), -1) {
		p := strings.TrimSuffix(m[1], "/")
		first, _, ok := strings.Cut(p, "/")
		if !ok || !top[first] || strings.ContainsAny(p, "*{}<>()") {
			continue
		}
		// pkg/path.Symbol names a Go identifier: the package must exist.
		if dir, last := filepath.Split(p); strings.Contains(last, ".") {
			name, sym, _ := strings.Cut(last, ".")
			if sym != "" && sym[0] >= 'A' && sym[0] <= 'Z' {
				p = dir + name
			}
		}
		checked++
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("docs/architecture.md names %s, which does not exist", m[1])
		}
	}
	if checked < 20 {
		t.Fatalf("found only %d paths in docs/architecture.md; is the pattern still right?", checked)
	}
}
