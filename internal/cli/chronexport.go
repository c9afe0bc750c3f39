package cli

// `claiim chron export` writes rows with their chain proof to a file;
// `claiim chron verify --file` checks such a file offline, without the
// database (docs/chron-api.md, "Export files").

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/yaml"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
)

type exportOpts struct {
	stream         *string
	fromSeq, toSeq *int64
	before, output *string
	vf             *verifyOpts
}

func exportFlags(fs *flag.FlagSet) *exportOpts {
	return &exportOpts{
		stream:  fs.String("stream", "", "the stream to export (gate/0, manager/1, ...)"),
		fromSeq: fs.Int64("from-seq", 0, "with --stream: the first seq (default: the stream's first stored row)"),
		toSeq:   fs.Int64("to-seq", 0, "with --stream: the last seq (default: the stream's last row)"),
		before:  fs.String("before", "", "instead of --stream: every stream's rows committed before this time (RFC 3339) or this long ago (e.g. 720h)"),
		output:  fs.String("o", "", "the file to write (required); it appears only once whole"),
		vf:      verifyFlags(fs),
	}
}

func runExport(ctx context.Context, pool *pgxpool.Pool, ef *exportOpts, out io.Writer) error {
	sel := chron.ExportSelection{Stream: *ef.stream, FromSeq: *ef.fromSeq, ToSeq: *ef.toSeq}
	switch {
	case *ef.output == "":
		return errors.New("-o FILE is required: the export is written to a file")
	case (sel.Stream == "") == (*ef.before == ""):
		return errors.New("give either --stream S (with --from-seq, --to-seq) or --before TIME")
	case sel.Stream == "" && (sel.FromSeq != 0 || sel.ToSeq != 0):
		return errors.New("--from-seq and --to-seq select within one --stream")
	case sel.FromSeq < 0 || sel.ToSeq < 0:
		return errors.New("--from-seq and --to-seq are seqs, 1 or more")
	}
	if *ef.before != "" {
		t, err := parseTime(*ef.before, true)
		if err != nil {
			return fmt.Errorf("--before: %w", err)
		}
		sel.Before = t
	}
	vopts, problems, err := ef.vf.options(ctx)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("a checkpoint does not verify (%s): run `claiim chron verify` before exporting", problems[0])
	}
	var cps []chron.SignedCheckpoint
	for _, cp := range vopts.Checkpoints {
		if err := cp.Verify(vopts.PublicKeys); err != nil {
			return fmt.Errorf("the checkpoint of stream %q %w: run `claiim chron verify` before exporting", cp.Stream, err)
		}
		cps = append(cps, cp)
	}
	h, tr, digest, err := exportToFile(ctx, pool, *ef.output, sel, chron.ExportOptions{Keys: vopts.Keys, Checkpoints: cps})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "exported %d rows of %d streams to %s (sha256 %s)\n", tr.Rows, len(h.Streams), *ef.output, digest)
	for i, s := range h.Streams {
		proof := "no signed checkpoint in its range"
		if p := tr.Streams[i]; p.Checkpoint != nil {
			proof = fmt.Sprintf("signed checkpoint at seq %d", p.Checkpoint.Seq)
		}
		fmt.Fprintf(out, "  %s seq %d to %d: %s\n", s.Stream, s.FromSeq, s.ToSeq, proof)
	}
	if vopts.Keys == nil {
		fmt.Fprintln(out, "note: no chain keys given: keyed rows were checked by their links only while exporting")
	}
	return nil
}

// exportToFile writes the export to path through a temporary file in the
// same directory, synced and renamed only once whole: a failed export
// leaves no file that could be taken for one.
func exportToFile(ctx context.Context, pool *pgxpool.Pool, path string, sel chron.ExportSelection, opts chron.ExportOptions) (
	chron.ExportHeader, chron.ExportTrailer, string, error) {
	if _, err := os.Stat(path); err == nil {
		return chron.ExportHeader{}, chron.ExportTrailer{}, "", fmt.Errorf("%s exists: choose another name, an export never overwrites one", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return chron.ExportHeader{}, chron.ExportTrailer{}, "", err
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone after the rename
	defer func() { _ = f.Close() }()
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 256<<10)
	h, tr, err := chron.Export(ctx, pool, bw, sel, opts)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return h, tr, "", fmt.Errorf("exporting to %s: %w (no file was made)", path, err)
	}
	return h, tr, hex.EncodeToString(sum.Sum(nil)), nil
}

type fileOpts struct {
	file, keys, publicKeys *string
}

func verifyFileFlags(fs *flag.FlagSet) *fileOpts {
	return &fileOpts{
		file:       fs.String("file", "", "verify an export file offline, without the database"),
		keys:       fs.String("keys", "", "with --file: the key Secret, as files, of the component whose streams the file holds (for both, --gate-keys and --manager-keys)"),
		publicKeys: fs.String("public-keys", "", "with --file: the ConfigMap "+chronlease.PublicConfigMap+" as JSON or YAML (kubectl get configmap -o json), to check checkpoint signatures"),
	}
}

// runVerifyFile is `claiim chron verify --file`.
func runVerifyFile(vf *verifyOpts, ff *fileOpts, out io.Writer) error {
	f, err := os.Open(*ff.file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	h, err := chron.ReadExportHeader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *ff.file, err)
	}
	dirs := map[string]string{chron.ScopeGate: *vf.gateKeysDir, chron.ScopeManager: *vf.managerKeyDir}
	if *ff.keys != "" {
		scopes := map[string]bool{}
		for _, s := range h.Streams {
			scopes[chron.ScopeOf(s.Stream)] = true
		}
		if len(scopes) != 1 || scopes[""] {
			return errors.New("--keys: the file holds streams of both components (or of neither): give --gate-keys and --manager-keys")
		}
		for s := range scopes {
			dirs[s] = *ff.keys
		}
	}
	opts := chron.FileVerifyOptions{Keys: chron.Keyring{}, PublicKeys: chron.PublicKeys{}}
	for scope, dir := range dirs {
		if dir == "" {
			continue
		}
		k, err := chronlease.ReadKeyDir(dir, scope)
		if err != nil {
			return err
		}
		opts.Keys.Add(k)
		for _, p := range k.Publics() {
			opts.PublicKeys[p.ID] = p
		}
	}
	if *ff.publicKeys != "" {
		if err := readPublicFile(*ff.publicKeys, opts.PublicKeys); err != nil {
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	rep, err := chron.VerifyFile(f, opts)
	var p *chron.FileProblem
	if errors.As(err, &p) {
		fmt.Fprintf(out, "TAMPERED %s %s\n", *ff.file, p)
		return fmt.Errorf("%s failed verification: it is not the export it claims to be; do not prune with it. Export the rows "+
			"again from the database (claiim chron export) once `claiim chron verify` passes there, or use another copy of the file", *ff.file)
	}
	if err != nil {
		return err
	}
	printFileReport(out, *ff.file, &rep)
	return nil
}

func printFileReport(out io.Writer, name string, rep *chron.FileReport) {
	fmt.Fprintf(out, "checked %d rows in %d streams of %s (export version %d, made %s; sha256 %s)\n", rep.Rows,
		len(rep.Header.Streams), name, rep.Header.Version, rep.Header.Created.Format(time.RFC3339), rep.Digest)
	for i, s := range rep.Header.Streams {
		anchor := "from the stream's start"
		if s.FromSeq > 1 {
			anchor = fmt.Sprintf("anchored on hash %.16s… of seq %d, which is not in this file: the previous export's last hash, or the signed prune record, must be it",
				s.PrevHash, s.FromSeq-1)
		}
		fmt.Fprintf(out, "  %s seq %d to %d, last hash %s, %s\n", s.Stream, s.FromSeq, s.ToSeq, rep.Proofs[i].LastHash, anchor)
	}
	if rep.Unkeyed > 0 {
		fmt.Fprintf(out, "note: %d keyed rows were checked by their links only (no chain key given: --keys, or --gate-keys/--manager-keys)\n", rep.Unkeyed)
	}
	if rep.Unsigned > 0 {
		fmt.Fprintf(out, "note: %d checkpoints matched their rows, but their signatures were not checked (no public keys: --keys or --public-keys)\n", rep.Unsigned)
	}
	fmt.Fprintf(out, "OK: every row's hash and link verifies, the file is whole, and %d signed checkpoints match\n", rep.Checkpoints)
}

// maxPublicFile bounds the public key ConfigMap read from a file.
const maxPublicFile = 1 << 20

// readPublicFile adds the public keys of a ConfigMap saved as JSON or YAML.
func readPublicFile(path string, into chron.PublicKeys) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPublicFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxPublicFile {
		return fmt.Errorf("--public-keys: %s is over %d bytes", path, maxPublicFile)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil || len(cm.Data) == 0 {
		return fmt.Errorf("--public-keys: %s is not the ConfigMap %s (kubectl get configmap %s -o json)", path,
			chronlease.PublicConfigMap, chronlease.PublicConfigMap)
	}
	for id, v := range cm.Data {
		p, err := chron.ParsePublic(id, v)
		if err != nil {
			return fmt.Errorf("--public-keys: %w", err)
		}
		into[id] = p
	}
	return nil
}
