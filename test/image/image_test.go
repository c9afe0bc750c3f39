// Package image checks the Dockerfile without a Docker engine: its
// structure, and that its exact build command makes a static binary.
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
	// Every package main imports must be copied into the build stage.
	for _, dir := range []string{"api/", "controllers/", "gate/", "test/"} {
		if !strings.Contains(df, "COPY "+dir+" "+dir) {
			t.Errorf("Dockerfile does not copy %s", dir)
		}
	}
}

func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 GOOS=linux) go build (.*) -o /out/claiim \.$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 GOOS=linux go build ... -o /out/claiim .` line in the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "claiim")
	// Docker runs RUN lines with /bin/sh -c: so does the test, quoting and all.
	cmd := exec.Command("sh", "-c", m[1]+" go build "+m[2]+` -o "$OUT" .`)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "OUT="+out)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, o)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v)", p.Type)
		}
	}
}
