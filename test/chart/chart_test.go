// Package chart checks the Helm chart in charts/claiim: its CRDs are the
// generated ones, it lints, its schema refuses bad values, it renders the
// same RBAC and webhooks as config/, every object it renders is accepted by
// a real kube-apiserver (server-side dry-run), and the manager runs under
// exactly the permissions it grants.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/claiim/claiim-operator/test/testenv"
)

const (
	// The release every test renders.
	releaseName = "claiim"
	releaseNS   = "claiim-system"
)

func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "claiim") }

// helmBin is the pinned helm the Makefile installs.
func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set; run the tests with 'make test' (or 'make verify-chart'), which installs helm into bin/ and sets HELM")
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("HELM=%s: %v; run 'make helm'", h, err)
	}
	return h
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = testenv.RepoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render runs `helm template` (CRDs included) with the given --set values.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, templateArgs(set...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatalf("parsing the rendered chart: %v\n%s", err, out)
	}
	return objs
}

// testDBHost is the PostgreSQL every render names (database.host), unless
// a test sets its own: the chart needs it to generate the role Secrets.
const testDBHost = "chron-db.example.com"

func templateArgs(set ...string) []string {
	args := []string{"template", releaseName, chartDir(), "--namespace", releaseNS, "--include-crds", "--kube-version", kubeVersion()}
	for _, s := range append([]string{"database.host=" + testDBHost}, set...) {
		args = append(args, "--set", s)
	}
	return args
}

// kubeVersion is the Kubernetes version helm renders for: the envtest
// apiserver's (K8S_VERSION, set by the Makefile). A helm built with
// `go install` would otherwise assume v1.20, below the chart's kubeVersion.
func kubeVersion() string {
	if v := os.Getenv("K8S_VERSION"); v != "" {
		return v
	}
	return "1.37.2"
}

// parse splits a multi-document YAML stream into objects.
func parse(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("a rendered document lacks apiVersion, kind or name: %v", m)
		}
		objs = append(objs, u)
	}
}

// find returns the one rendered object of kind and name, failing otherwise.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if found != nil {
				t.Fatalf("%s %s is rendered twice", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("%s %s is not rendered; rendered: %s", kind, name, names(objs))
	}
	return found
}

func ofKind(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
			}
		}
	}
	return out
}

func names(objs []*unstructured.Unstructured) string {
	var s []string
	for _, o := range objs {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

// convert turns an unstructured object into a typed one.
func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}
