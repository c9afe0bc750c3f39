// Package python_test runs the Python client's own tests (gate/python/tests,
// standard library unittest) as part of go test, so make test covers both
// clients.
package python_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/claiim/claiim-operator/test/testtls"
)

func TestPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	// tests/test_tls.py serves with this pair and trusts this CA.
	tlsDir := t.TempDir()
	ca := testtls.NewCA(t, "python-test")
	ca.Publish(t, tlsDir)
	if err := os.WriteFile(filepath.Join(tlsDir, "ca.crt"), ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "PYTHONDONTWRITEBYTECODE=1", "CLAIIM_TEST_TLS_DIR="+tlsDir)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("python3 -m unittest: %v", err)
	}
}
