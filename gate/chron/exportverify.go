package chron

// VerifyFile: an export file checked offline, without the database: every
// row as Verify checks it (rowcheck.go), its place in the file, the
// header's anchor and ranges, and the trailer's proof.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// FileVerifyOptions says what VerifyFile may use beyond the file.
type FileVerifyOptions struct {
	// Keys recomputes the HMAC of v2 rows; without keys of a stream's
	// component its v2 rows are checked by their links only.
	Keys Keyring
	// PublicKeys check the signatures of the trailer's checkpoints;
	// without them a checkpoint is compared with its row but its
	// signature is not checked (FileReport.Unsigned).
	PublicKeys PublicKeys
}

// FileReport is what a file holds, as verified.
type FileReport struct {
	Header      ExportHeader
	Proofs      []ExportProof
	Rows        int64
	Unkeyed     int64 // v2 rows checked by their links only
	Checkpoints int   // checkpoints whose signature was checked
	Unsigned    int   // checkpoints compared with their rows, signature unchecked (no public keys)
	Digest      string
}

// FileProblem is the first thing wrong in a file: its line (1 is the
// header), and the row's stream and seq when a row is at fault.
type FileProblem struct {
	Line   int
	Stream string
	Seq    int64
	What   string
}

func (p *FileProblem) Error() string {
	if p.Stream == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.What)
	}
	return fmt.Sprintf("line %d (stream %q seq %d): %s", p.Line, p.Stream, p.Seq, p.What)
}

// How a file problem begins, beside the row problems (WhatRowChanged, …).
const (
	WhatNotExport = "not an export"
	WhatTrailer   = "trailer changed"
	WhatRange     = "range changed"
)

// fileStream is one stream's state while its rows are read.
type fileStream struct {
	rng      ExportRange
	c        *rowChecker
	keyIDs   map[string]bool
	held     *rawRow // a row that jumped ahead: a gap, or the first of two swapped lines
	heldLine int
	cpHash   string
}

// VerifyFile reads an export file from r and checks it whole. A problem
// in the file is a *FileProblem; other errors are reading errors.
func VerifyFile(r io.Reader, opts FileVerifyOptions) (FileReport, error) {
	var rep FileReport
	sum := sha256.New()
	lr := newLineReader(io.TeeReader(r, sum))
	scopes := map[string]bool{}
	for _, k := range opts.Keys {
		scopes[k.Scope] = true
	}
	streams := map[string]*fileStream{}
	for {
		b, err := lr.next()
		if errors.Is(err, io.EOF) {
			if lr.n == 0 {
				return rep, &FileProblem{Line: 1, What: WhatNotExport + ": the file is empty"}
			}
			return rep, &FileProblem{Line: lr.n + 1, What: fmt.Sprintf("%s: the file ends after line %d without its trailer: "+
				"it was cut short, and rows after line %d may be missing", WhatTailCut, lr.n, lr.n)}
		}
		var long errLineLong
		switch {
		case errors.Is(err, errLineCut):
			return rep, &FileProblem{Line: lr.n, What: WhatTailCut + ": " + err.Error()}
		case errors.As(err, &long):
			return rep, &FileProblem{Line: lr.n, What: WhatNotExport + ": " + err.Error()}
		case err != nil:
			return rep, fmt.Errorf("reading the export file: %w", err)
		}
		l, err := parseLine(b)
		if err != nil {
			return rep, &FileProblem{Line: lr.n, What: WhatNotExport + ": " + err.Error()}
		}
		switch {
		case lr.n == 1 && l.Header == nil:
			return rep, &FileProblem{Line: 1, What: WhatNotExport + ": the first line is not a header"}
		case lr.n == 1:
			if err := checkHeader(l.Header); err != nil {
				return rep, &FileProblem{Line: 1, What: err.Error()}
			}
			rep.Header = *l.Header
			for _, s := range l.Header.Streams {
				fs := &fileStream{rng: s, keyIDs: map[string]bool{},
					c: newRowChecker(s.Stream, Verified{Seq: s.FromSeq - 1, Hash: s.PrevHash}, opts.Keys, scopes[ScopeOf(s.Stream)])}
				fs.c.anchored = s.FromSeq > 1
				for _, k := range s.KeyIDs {
					fs.keyIDs[k] = true
				}
				streams[s.Stream] = fs
			}
		case l.Header != nil:
			return rep, &FileProblem{Line: lr.n, What: WhatNotExport + ": a second header"}
		case l.Row != nil:
			if p := checkFileRow(streams, l.Row, lr.n); p != nil {
				return rep, p
			}
			rep.Rows++
		default:
			if err := checkTrailer(&rep, streams, l.Trailer, lr.n, opts.PublicKeys); err != nil {
				return rep, err
			}
			if _, err := lr.next(); !errors.Is(err, io.EOF) {
				return rep, &FileProblem{Line: lr.n, What: WhatNotExport + ": a line after the trailer"}
			}
			for _, s := range streams {
				rep.Unkeyed += s.c.unkeyed
			}
			rep.Digest = hex.EncodeToString(sum.Sum(nil))
			return rep, nil
		}
	}
}

// checkFileRow checks one row line against its stream's state.
func checkFileRow(streams map[string]*fileStream, e *ExportRow, line int) *FileProblem {
	s, ok := streams[e.Stream]
	if !ok {
		return &FileProblem{Line: line, Stream: e.Stream, Seq: e.Seq, What: WhatRange + ": a row of a stream the header does not name"}
	}
	raw, err := e.raw()
	if err != nil {
		return &FileProblem{Line: line, Stream: e.Stream, Seq: e.Seq, What: WhatRowChanged + ": " + err.Error()}
	}
	at := func(l int, r *rawRow, what string) *FileProblem {
		return &FileProblem{Line: l, Stream: r.Stream, Seq: r.Seq, What: what}
	}
	next := s.c.head.Seq + 1
	if s.held != nil {
		// The row before this one jumped ahead: if this one fills the
		// gap, the two lines were swapped; else rows are missing.
		if raw.Seq == next {
			return at(s.heldLine, s.held, fmt.Sprintf("%s: seq %d (line %d) comes before seq %d (line %d)",
				WhatOutOfOrder, s.held.Seq, s.heldLine, raw.Seq, line))
		}
		return s.gap()
	}
	switch {
	case raw.Seq > s.rng.ToSeq:
		return at(line, &raw, fmt.Sprintf("%s: seq %d is past the header's range of the stream (seq %d to %d)",
			WhatRange, raw.Seq, s.rng.FromSeq, s.rng.ToSeq))
	case raw.Seq < next:
		return at(line, &raw, fmt.Sprintf("%s: seq %d comes after seq %d", WhatOutOfOrder, raw.Seq, s.c.head.Seq))
	case raw.Seq > next:
		s.held, s.heldLine = &raw, line
		return nil
	case raw.Seq == s.rng.FromSeq && raw.PrevHash != s.rng.PrevHash:
		return at(line, &raw, fmt.Sprintf("%s: the first row's prev_hash is not the header's prev_hash of the stream: "+
			"the header's anchor or the row was changed", WhatAnchor))
	case raw.Format == FormatV2 && !s.keyIDs[raw.KeyID]:
		return at(line, &raw, fmt.Sprintf("%s: the row names chain key %q, which the header does not list", WhatKey, raw.KeyID))
	}
	if what := s.c.check(&raw, 0); what != "" {
		return at(line, &raw, what)
	}
	if raw.Seq == s.rng.CheckpointSeq {
		s.cpHash = raw.Hash
	}
	return nil
}

// gap is the problem of a held row: the rows before it are missing.
func (s *fileStream) gap() *FileProblem {
	return &FileProblem{Line: s.heldLine, Stream: s.rng.Stream, Seq: s.held.Seq, What: fmt.Sprintf(
		"%s: sequence jumps from %d to %d: rows %d to %d are not in the file", WhatRowMissing,
		s.c.head.Seq, s.held.Seq, s.c.head.Seq+1, s.held.Seq-1)}
}

// checkTrailer compares the trailer with what the rows ended at, and
// checks each checkpoint.
func checkTrailer(rep *FileReport, streams map[string]*fileStream, t *ExportTrailer, line int, pubs PublicKeys) error {
	for _, hs := range rep.Header.Streams {
		s := streams[hs.Stream]
		switch {
		case s.held != nil:
			return s.gap()
		case s.c.head.Seq != hs.ToSeq:
			return &FileProblem{Line: line, Stream: hs.Stream, Seq: s.c.head.Seq + 1, What: fmt.Sprintf(
				"%s: the file's rows of the stream end at seq %d, but its header says seq %d", WhatTailCut, s.c.head.Seq, hs.ToSeq)}
		}
	}
	if len(t.Streams) != len(rep.Header.Streams) || t.Rows != rep.Rows {
		return &FileProblem{Line: line, What: fmt.Sprintf("%s: it counts %d rows in %d streams; the file has %d rows in %d streams",
			WhatTrailer, t.Rows, len(t.Streams), rep.Rows, len(rep.Header.Streams))}
	}
	for i, p := range t.Streams {
		hs := rep.Header.Streams[i]
		s := streams[hs.Stream]
		if p.Stream != hs.Stream || p.LastSeq != s.c.head.Seq || p.LastHash != s.c.head.Hash {
			return &FileProblem{Line: line, Stream: hs.Stream, Seq: s.c.head.Seq, What: fmt.Sprintf(
				"%s: its proof of stream %q (seq %d, hash %.12s…) is not where the stream's rows end (seq %d, hash %.12s…)",
				WhatTrailer, p.Stream, p.LastSeq, p.LastHash, s.c.head.Seq, s.c.head.Hash)}
		}
		if err := checkFileCheckpoint(rep, s, p.Checkpoint, line, pubs); err != nil {
			return err
		}
		rep.Proofs = append(rep.Proofs, p)
	}
	return nil
}

func checkFileCheckpoint(rep *FileReport, s *fileStream, cp *SignedCheckpoint, line int, pubs PublicKeys) error {
	fail := func(what string) error {
		return &FileProblem{Line: line, Stream: s.rng.Stream, Seq: s.rng.CheckpointSeq, What: what}
	}
	switch {
	case cp == nil && s.rng.CheckpointSeq != 0:
		return fail(fmt.Sprintf("%s: the header announces a checkpoint at seq %d; the trailer has none", WhatTrailer, s.rng.CheckpointSeq))
	case cp == nil:
		return nil
	case cp.Stream != s.rng.Stream || cp.Seq != s.rng.CheckpointSeq:
		return fail(fmt.Sprintf("%s: the trailer's checkpoint is of stream %q seq %d, not the one the header announces",
			WhatCheckpoint, cp.Stream, cp.Seq))
	case cp.Hash != s.cpHash:
		return fail(WhatRechained + ": the row's hash is not the one signed in the checkpoint")
	case len(pubs) == 0:
		rep.Unsigned++
		return nil
	}
	if err := cp.Verify(pubs); err != nil {
		return fail(WhatCheckpoint + ": " + err.Error())
	}
	rep.Checkpoints++
	return nil
}
