package policytest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: whatever a file beside the example's objects holds, loading,
// checking and running it returns problems or results, never a panic.
func FuzzLoad(f *testing.F) {
	objects, _ := filepath.Glob(filepath.Join(examples, "objects", "*.yaml"))
	tests, _ := filepath.Glob(filepath.Join(examples, "tests", "*.yaml"))
	for _, p := range append(append([]string{}, objects...), tests...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: claiim.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {rules: [{name: r, actions: [x], efect: Deny}]}\n"))
	f.Add([]byte("apiVersion: test.claiim.io/v1alpha1\nkind: DecisionTest\nspec: {cases: [{expect: {policies: [a]}}]}\n---\n- [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Suite{where: map[string]Pos{}}
		for _, p := range objects {
			s.loadFile(p)
		}
		if probs := s.loadReader("f.yaml", bytes.NewReader(b)); len(probs) == 0 && len(s.check()) == 0 {
			Run(s, Options{Now: now})
		}
	})
}
