// Package image checks the Dockerfile without a Docker engine: its
// structure, and that its exact build command makes a static binary; and
// the images `make image` writes for the local cluster (image_build_test.go).
package image

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/test/testenv"
)

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:\S+ AS build$`),
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static:nonroot$`),
		regexp.MustCompile(`(?m)^COPY --from=build /out/claiim /claiim$`),
		regexp.MustCompile(`(?m)^USER 65532:65532$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/claiim"\]$`),
	} {
		if !want.MatchString(df) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if strings.Index(df, "AS build") > strings.Index(df, "distroless") {
		t.Error("the build stage must come before the runtime stage")
	}
	// Every directory of ours the binary imports is copied into the build
	// stage, and no test code: test/ would only let test helpers creep back.
	copied := map[string]bool{}
	for _, c := range copies(df) {
		for _, src := range c[:len(c)-1] {
			copied[src] = true
		}
		// A source directory lands where the import path expects it.
		if len(c) == 2 && strings.HasSuffix(c[0], "/") && c[1] != c[0] {
			t.Errorf("Dockerfile copies %s to %s; a package directory keeps its path (COPY %s %s)", c[0], c[1], c[0], c[0])
		}
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/claiim")
	list.Dir = testenv.RepoRoot()
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/claiim: %v", err)
	}
	const module = "github.com/claiim/claiim-operator/"
	for _, pkg := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(pkg, module); ok {
			dir, _, _ := strings.Cut(rest, "/")
			if !copied[dir+"/"] {
				t.Errorf("Dockerfile does not copy %s/, which the binary imports (%s)", dir, pkg)
			}
		}
	}
	for _, src := range []string{"test/", "*.go", "."} {
		if copied[src] {
			t.Errorf("Dockerfile copies %s into the build stage; the binary needs only cmd/ and the packages it imports", src)
		}
	}
}

// copies lists the build stage's COPY lines as their arguments (sources,
// then destination), leaving out COPY --from.
func copies(df string) [][]string {
	var cs [][]string
	for _, m := range regexp.MustCompile(`(?m)^COPY (.+)$`).FindAllStringSubmatch(df, -1) {
		if f := strings.Fields(m[1]); len(f) >= 2 && !strings.HasPrefix(f[0], "--") {
			cs = append(cs, f)
		}
	}
	return cs
}

func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 GOOS=linux) go build (.*) -o /out/claiim (\./cmd/claiim)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 GOOS=linux go build ... -o /out/claiim ./cmd/claiim` line in the Dockerfile")
	}
	// The build context as the build stage sees it: only what it copies.
	src := t.TempDir()
	for _, c := range copies(string(b)) {
		dst := filepath.Join(src, c[len(c)-1])
		for _, from := range c[:len(c)-1] {
			if err := copyPath(filepath.Join(testenv.RepoRoot(), from), dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "claiim")
	// Docker runs RUN lines with /bin/sh -c: so does the test, quoting and all.
	cmd := exec.Command("sh", "-c", m[1]+" go build "+m[2]+` -o "$OUT" `+m[3])
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "OUT="+out)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, o)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := staticELF(f, elf.EM_NONE); err != nil { // built for this machine
		t.Fatalf("the binary: %v", err)
	}
}

// copyPath copies a file into the directory dst, or a directory's tree to
// dst, as COPY does.
func copyPath(from, dst string) error {
	st, err := os.Stat(from)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return os.CopyFS(dst, os.DirFS(from))
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, filepath.Base(from)), b, 0o644)
}
