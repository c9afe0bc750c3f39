// Package testenv is the one place tests start their real parts: a
// kube-apiserver and etcd (envtest) with RBAC on and the CLAIIM CRDs
// installed, users with their own credentials, a throwaway PostgreSQL with
// Chron migrated (test/pgtest), and the manager with its webhooks, wired
// by the suite as the binary wires it.
//
// A suite calls Setup (or Launch, for an environment shared by a package)
// with Options; New and Start are the building blocks underneath, for the
// local development environment.
package testenv

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// RepoRoot is the repository's top directory: from this file's path, or,
// in a binary built with -trimpath, the nearest parent of the working
// directory that holds this module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	if filepath.IsAbs(file) {
		return filepath.Join(filepath.Dir(file), "..", "..")
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/claiim/claiim-operator\n") {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Scheme holds the Kubernetes built-ins and the CLAIIM types.
func Scheme() *kruntime.Scheme {
	s := kruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(claiimv1.AddToScheme(s))
	return s
}

// Main is a TestMain for suites that need envtest and PostgreSQL: with
// -short it skips them, without the envtest binaries it fails saying how
// to get them, else it exits with launch's code.
func Main(m *testing.M, launch func(*testing.M) int) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping: needs envtest and PostgreSQL")
		os.Exit(0)
	}
	if err := Available(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(launch(m))
}

// Available reports whether envtest binaries are configured, and if not,
// what to do.
func Available() error {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is not set; run the tests with 'make test', which builds kube-apiserver and etcd once and sets it")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s; run 'make envtest'", dir, b)
		}
	}
	return nil
}

// New returns an environment with the CRDs from config/crd/bases and RBAC
// authorization on, so tests can act as real users.
func New() *envtest.Environment {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	return env
}

// Start starts env and returns the admin config.
func Start(env *envtest.Environment) (*rest.Config, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	return cfg, nil
}

// GroupVersionResource of a CLAIIM resource by plural name.
func GVR(plural string) schema.GroupVersionResource {
	return claiimv1.GroupVersion.WithResource(plural)
}
