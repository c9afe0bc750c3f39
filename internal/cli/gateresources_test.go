package cli

import (
	"flag"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func parseGateResources(t *testing.T, args ...string) (corev1.ResourceRequirements, error) {
	t.Helper()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f := bindGateResources(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.requirements()
}

// By default the gate is Burstable with a memory limit (GOMEMLIMIT comes
// from it) and no CPU limit; each flag can be emptied; a bad quantity or
// a request above its limit is refused at start, naming the flag.
func TestGateResources(t *testing.T) {
	r, err := parseGateResources(t)
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	if !equalResources(r, want) {
		t.Fatalf("defaults: %v, want %v", r, want)
	}

	r, err = parseGateResources(t, "--gate-cpu-request=", "--gate-memory-request=", "--gate-memory-limit=", "--gate-cpu-limit=2")
	if err != nil {
		t.Fatal(err)
	}
	want = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
	if !equalResources(r, want) {
		t.Fatalf("emptied: %v, want %v", r, want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--gate-memory-limit=lots"}, `--gate-memory-limit="lots": want a positive Kubernetes quantity`},
		{[]string{"--gate-cpu-request=-1"}, `--gate-cpu-request="-1"`},
		{[]string{"--gate-cpu-request=0"}, `--gate-cpu-request="0"`},
		{[]string{"--gate-memory-request=1Gi"}, "the gate's memory request 1Gi is above its limit 512Mi"},
		{[]string{"--gate-cpu-request=2", "--gate-cpu-limit=1"}, "lower --gate-cpu-request or raise --gate-cpu-limit"},
	} {
		_, err := parseGateResources(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

func equalResources(a, b corev1.ResourceRequirements) bool {
	same := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || v.Cmp(w) != 0 {
				return false
			}
		}
		return true
	}
	return same(a.Requests, b.Requests) && same(a.Limits, b.Limits)
}
