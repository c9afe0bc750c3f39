package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/claiim/claiim-operator/test/testenv"
)

// The images `make image` and `make image-pause` write for the local
// cluster: what containerd is given is what the Dockerfile describes, and
// the same sources give the same digest.
func TestImageBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the images")
	}
	// go test caches a pass by the files the test itself opens: make's
	// inputs must be among them.
	for _, f := range []string{"Makefile", "hack/image/main.go", "hack/image/pause/main.go"} {
		if _, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		target, tar, ref, user, entrypoint string
		paths                              []string
	}{
		{"image", "claiim.tar", "docker.io/claiim/claiim:dev", "65532:65532", "/claiim",
			[]string{"claiim", "etc/", "etc/group", "etc/passwd", "tmp/"}},
		{"image-pause", "pause.tar", "registry.k8s.io/pause:claiim", "65535:65535", "/pause",
			[]string{"pause"}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var digests []v1.Hash
			for range 2 {
				img, tags := makeImage(t, tc.target, tc.tar)
				if !slices.Equal(tags, []string{tc.ref}) {
					t.Errorf("tarball tags %v, want [%s]", tags, tc.ref)
				}
				cfg, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if c := cfg.Config; c.User != tc.user || !slices.Equal(c.Entrypoint, []string{tc.entrypoint}) {
					t.Errorf("config User %q Entrypoint %q, want %q [%s]", c.User, c.Entrypoint, tc.user, tc.entrypoint)
				}
				if cfg.OS != "linux" || cfg.Architecture != "amd64" {
					t.Errorf("config platform %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
				}
				files, problems := readLayer(img)
				for _, p := range problems {
					t.Error(p)
				}
				if got := sortedKeys(files); !slices.Equal(got, tc.paths) {
					t.Errorf("layer holds %v, want %v", got, tc.paths)
				}
				if err := staticELF(bytes.NewReader(files[tc.entrypoint[1:]]), elf.EM_X86_64); err != nil {
					t.Errorf("%s: %v", tc.entrypoint, err)
				}
				if p, ok := files["etc/passwd"]; ok && !strings.Contains(string(p), "\nnonroot:x:65532:65532:") {
					t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", p)
				}
				d, err := img.Digest()
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, d)
			}
			if digests[0] != digests[1] {
				t.Errorf("two builds from the same sources differ: %s and %s (not reproducible)", digests[0], digests[1])
			}
			t.Logf("%s: %s", tc.ref, digests[0])
		})
	}
}

// `make image` builds the binary as the Dockerfile's build stage does.
func TestImageTargetBuildsLikeDockerfile(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 GOOS=linux (go build .*) -o /out/claiim (\./cmd/claiim)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 GOOS=linux go build ... -o /out/claiim ./cmd/claiim` line in the Dockerfile")
	}
	want := fmt.Sprintf("CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) %s -o $(LOCALBIN)/linux/claiim %s", m[1], m[2])
	if !bytes.Contains(mk, []byte("\t"+want+"\n")) {
		t.Errorf("the Makefile's image target does not build as the Dockerfile does; want the line\n\t%s", want)
	}
}

// The layer checks catch what they are meant to: a writable file, a
// non-root owner, a /tmp without the sticky bit, more than one layer.
func TestReadLayerFindsProblems(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "app", Typeflag: tar.TypeReg, Mode: 0o755},
		{Name: "data", Typeflag: tar.TypeReg, Mode: 0o666},
		{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 65532},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o777},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l, l)
	if err != nil {
		t.Fatal(err)
	}
	_, problems := readLayer(img)
	want := []string{"2 layers", "data mode", "home/ owned by 65532", "tmp/ mode"}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %d: %q", problems, len(want), want)
	}
	for i, p := range problems {
		if !strings.Contains(p, want[i]) {
			t.Errorf("problem %q, want one about %q", p, want[i])
		}
	}
}

// makeImage runs `make TARGET` with its own bin directory, as a developer
// would, and opens the tarball it writes.
func makeImage(t *testing.T, target, file string) (v1.Image, []string) {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("make", "-s", target, "LOCALBIN="+bin)
	cmd.Dir = testenv.RepoRoot()
	// The defaults under test, not a developer's overrides.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "IMG" && k != "IMAGE_REF" && k != "PAUSE_IMAGE" && k != "IMAGE_ARCH" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	path := filepath.Join(bin, "images", file)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 {
		t.Fatalf("%s holds %d images, want 1", path, len(m))
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img, m[0].RepoTags
}

// readLayer returns the regular files of the image's single layer by path,
// directories as names with no content, and every entry a non-root user
// could write or that root does not own. A read-only root filesystem is
// the pod's (test/chart, controllers/gate_test.go); this is what lies under
// it.
func readLayer(img v1.Image) (map[string][]byte, []string) {
	var problems []string
	layers, err := img.Layers()
	if err != nil {
		return nil, []string{err.Error()}
	}
	if len(layers) != 1 {
		problems = append(problems, fmt.Sprintf("%d layers, want 1", len(layers)))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, append(problems, err.Error())
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, append(problems, err.Error())
		}
		if h.Uid != 0 || h.Gid != 0 {
			problems = append(problems, fmt.Sprintf("%s owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid))
		}
		mode := os.FileMode(h.Mode).Perm()
		if h.Name == "tmp/" {
			if h.Mode != 0o1777 {
				problems = append(problems, fmt.Sprintf("tmp/ mode %o, want 1777", h.Mode))
			}
		} else if mode&0o022 != 0 {
			problems = append(problems, fmt.Sprintf("%s mode %v: writable by a non-root user", h.Name, mode))
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return files, append(problems, err.Error())
		}
		files[h.Name] = b
	}
	return files, problems
}

// staticELF reports why a binary would not run on distroless static: not
// an ELF for the machine (unless EM_NONE), or linked against a libc.
func staticELF(r io.ReaderAt, machine elf.Machine) error {
	f, err := elf.NewFile(r)
	if err != nil {
		return err
	}
	defer f.Close()
	if machine != elf.EM_NONE && f.Machine != machine {
		return fmt.Errorf("built for %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("dynamically linked (%v)", p.Type)
		}
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
