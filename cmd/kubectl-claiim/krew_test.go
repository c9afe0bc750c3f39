package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"sigs.k8s.io/yaml"
)

// The krew manifest parses and names this binary, as krew checks it
// before an index accepts it.
func TestKrewManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", "claiim.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion, Kind string
		Metadata         struct{ Name string }
		Spec             struct {
			Version, ShortDescription, Description, Caveats, Homepage string
			Platforms                                                 []struct {
				URI, Sha256, Bin string
				Files            []struct{ From, To string }
				Selector         struct{ MatchLabels map[string]string }
			}
		}
	}
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		t.Fatalf("plugins/claiim.yaml: %v", err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "claiim" {
		t.Errorf("not krew's Plugin claiim: %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(m.Spec.Version) || m.Spec.ShortDescription == "" || len(m.Spec.Platforms) == 0 {
		t.Errorf("version %q, shortDescription %q, %d platforms", m.Spec.Version, m.Spec.ShortDescription, len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		if p.Bin != "kubectl-claiim" || len(p.Files) == 0 || p.Files[0].From != "kubectl-claiim" ||
			!regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Sha256) || p.Selector.MatchLabels["os"] == "" {
			t.Errorf("platform %v: want bin kubectl-claiim, its file, a sha256 and an os selector", p.Selector.MatchLabels)
		}
	}
}
