package devenv

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// captureStdout runs fn and returns what it printed.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	fn()
	os.Stdout = old
	w.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStepFollowerEchoesOnlyNewCompleteSteps(t *testing.T) {
	log := filepath.Join(t.TempDir(), "dev.log")
	steps := stepFollower{path: log}
	if got := captureStdout(t, steps.print); got != "" {
		t.Fatalf("no log yet: printed %q", got)
	}
	appendTo := func(s string) {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendTo("06:51:02 starting etcd and kube-apiserver (RBAC on)\nCREATE ROLE claiim_gate\n06:51:09 starting a throw")
	if got, want := captureStdout(t, steps.print), "  06:51:02 starting etcd and kube-apiserver (RBAC on)\n"; got != want {
		t.Fatalf("first read printed %q, want %q (the migration's output and the unfinished line held back)", got, want)
	}
	appendTo("away PostgreSQL\n")
	if got, want := captureStdout(t, steps.print), "  06:51:09 starting a throwaway PostgreSQL\n"; got != want {
		t.Fatalf("second read printed %q, want %q (each step once)", got, want)
	}
	if got := captureStdout(t, steps.print); got != "" {
		t.Fatalf("nothing new: printed %q", got)
	}
}

func TestIsStep(t *testing.T) {
	for line, want := range map[string]bool{
		"06:51:02 ready":          true,
		"06:51:02":                false,
		"06:51:0 ready":           false,
		"migrated Chron to v12":   false,
		"":                        false,
		"99:99:99 not a time":     false,
		"06:51:02starting no gap": false,
	} {
		if got := isStep(line); got != want {
			t.Errorf("isStep(%q) = %v, want %v", line, got, want)
		}
	}
}
