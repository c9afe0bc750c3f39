// Command image writes a one-layer image from files as a docker-archive
// tarball (`ctr images import` reads it), with no Docker engine: make image.
//
// The image is reproducible: entries are sorted, owned by 0:0, and carry one
// fixed time (SOURCE_DATE_EPOCH, or the Unix epoch), so the same inputs give
// the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var adds, labels list
	out := flag.String("o", "", "the tarball to write, e.g. bin/images/claiim.tar")
	ref := flag.String("ref", "", "the image reference the tarball tags, e.g. docker.io/claiim/claiim:dev")
	entrypoint := flag.String("entrypoint", "", "the image's entrypoint, an absolute path in the image")
	user := flag.String("user", "65532:65532", "the image's numeric UID:GID, so runAsNonRoot can verify it")
	arch := flag.String("arch", "amd64", "the architecture the files were built for (GOARCH)")
	tmp := flag.Bool("tmp", false, "add /tmp with mode 1777")
	flag.Var(&adds, "add", "SRC:DST: copy file SRC to DST in the image, read-only (repeatable)")
	flag.Var(&labels, "label", "KEY=VALUE: an image label (repeatable)")
	flag.Parse()
	if err := run(*out, *ref, *entrypoint, *user, *arch, *tmp, adds, labels); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(out, ref, entrypoint, user, arch string, tmp bool, adds, labels []string) error {
	if out == "" || ref == "" || entrypoint == "" || len(adds) == 0 {
		return fmt.Errorf("-o, -ref, -entrypoint and at least one -add are required (go run ./hack/image -h)")
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-ref %q: %w; give a full reference such as docker.io/claiim/claiim:dev", ref, err)
	}
	if u, g, ok := strings.Cut(user, ":"); !ok || !numeric(u) || !numeric(g) {
		return fmt.Errorf("-user %q: give a numeric UID:GID such as 65532:65532 (kubelet checks runAsNonRoot only on numbers)", user)
	}
	mtime := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: give seconds since the epoch, or unset it", s)
		}
		mtime = time.Unix(sec, 0).UTC()
	}
	files := map[string]string{} // destination in the image -> source
	for _, a := range adds {
		src, dst, ok := strings.Cut(a, ":")
		if !ok || src == "" || !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
			return fmt.Errorf("-add %q: give SRC:DST with DST a clean absolute file path, e.g. bin/linux/claiim:/claiim", a)
		}
		files[dst] = src
	}
	if _, ok := files[entrypoint]; !ok {
		return fmt.Errorf("-entrypoint %s is not among the -add destinations; add it (-add SRC:%s)", entrypoint, entrypoint)
	}
	layerTar, err := layer(files, tmp, mtime)
	if err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, History: v1.History{
		Created: v1.Time{Time: mtime}, CreatedBy: "hack/image",
	}})
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: mtime}
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.User = user
	cfg.Config.Env = []string{"PATH=/"}
	cfg.Config.Labels = map[string]string{}
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("-label %q: give KEY=VALUE", kv)
		}
		cfg.Config.Labels[k] = v
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	// Both were computed to write the tarball. `ctr images import` writes
	// its own manifest (another digest); the image ID is what crictl shows.
	digest, _ := img.Digest()
	id, _ := img.ConfigName()
	fmt.Printf("%s: %s (manifest %s, image ID %s)\n", out, tag, digest, id)
	return nil
}

// layer returns an uncompressed layer tar: the files read-only (0555 if the
// source is executable, else 0444), their parent directories 0755, all
// owned by root, so the image's non-root user can write nothing but /tmp.
func layer(files map[string]string, tmp bool, mtime time.Time) ([]byte, error) {
	dirs := map[string]int64{}
	for dst := range files {
		for d := path.Dir(dst); d != "/"; d = path.Dir(d) {
			dirs[d] = 0o755
		}
	}
	if tmp {
		if _, ok := files["/tmp"]; ok {
			return nil, fmt.Errorf("-tmp and -add ...:/tmp both claim /tmp; drop one")
		}
		dirs["/tmp"] = 0o1777
	}
	var names []string
	for d := range dirs {
		if _, ok := files[d]; ok {
			return nil, fmt.Errorf("%s is both a file and a parent directory in -add; fix the destinations", d)
		}
		names = append(names, d)
	}
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names) // a parent sorts before its children

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		h := &tar.Header{Name: n[1:], ModTime: mtime, Uname: "root", Gname: "root"}
		var body []byte
		if mode, ok := dirs[n]; ok {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", mode
		} else {
			st, err := os.Stat(files[n])
			if err != nil {
				return nil, fmt.Errorf("-add %s:%s: %w; build it first (make image builds bin/linux/)", files[n], n, err)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("-add %s:%s: not a regular file; only files are copied (directories are made from their paths)", files[n], n)
			}
			if body, err = os.ReadFile(files[n]); err != nil {
				return nil, err
			}
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(body)), 0o444
			if st.Mode()&0o111 != 0 {
				h.Mode = 0o555
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func numeric(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
