package chron

// The export file: NDJSON, one JSON object per line, each with exactly one
// of "header", "row" or "trailer". docs/chron-api.md ("Export files")
// describes it; ExportVersion names this layout, and a change to it is a
// new version that VerifyFile reads beside the old ones.
//
//	{"header":{"format":"claiim.io/chron-export","version":1,...}}
//	{"row":{...every stored column of one row...}}
//	...
//	{"trailer":{"rows":N,"streams":[{"stream":...,"last_seq":...,"last_hash":...,"checkpoint":{...}}]}}

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The format's name and version, in every header.
const (
	ExportFormat  = "claiim.io/chron-export"
	ExportVersion = 1
)

// Bounds of a file, so that a reader's memory is bounded whatever it is
// given: a line (a row's context is at most 16 KiB; its texts are bounded
// by the gate's request limits), and the streams of one header.
const (
	MaxExportLine    = 1 << 20
	MaxExportStreams = 4096
)

// ExportHeader is the first line: what the file holds.
type ExportHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Before is the selection of `claiim chron export --before`: each
	// stream's rows committed before it. Zero for a --stream export.
	Before  time.Time     `json:"before,omitzero"`
	Streams []ExportRange `json:"streams"`
}

// ExportRange is one stream's rows in the file: seq FromSeq to ToSeq, all
// of them, in order.
type ExportRange struct {
	Stream  string `json:"stream"`
	FromSeq int64  `json:"from_seq"`
	ToSeq   int64  `json:"to_seq"`
	// PrevHash anchors the first row: the hash of row FromSeq-1, which is
	// not in the file (the genesis hash when FromSeq is 1).
	PrevHash string `json:"prev_hash"`
	// KeyIDs are the chain keys of the range's v2 rows, sorted; empty when
	// every row is v1.
	KeyIDs []string `json:"key_ids"`
	// CheckpointSeq is the seq of the signed checkpoint in the trailer
	// (0: none), so that a reader keeps that row's hash to compare.
	CheckpointSeq int64 `json:"checkpoint_seq,omitempty"`
}

// ExportRow is one row as stored: every hashed column (the JSON ones as
// stored), the chain fields, and committed_at (not hashed).
type ExportRow struct {
	ID             string          `json:"id"`
	Stream         string          `json:"stream"`
	Seq            int64           `json:"seq"`
	Time           string          `json:"time"` // RFC 3339, UTC, as hashed
	Kind           string          `json:"kind"`
	Actor          string          `json:"actor"`
	AgentName      string          `json:"agent_name"`
	AgentNamespace string          `json:"agent_namespace"`
	AgentUID       string          `json:"agent_uid"`
	Org            string          `json:"org"`
	Action         string          `json:"action"`
	Context        json.RawMessage `json:"context"`
	Outcome        string          `json:"outcome"`
	Reason         string          `json:"reason"`
	Message        string          `json:"message"`
	Anchor         string          `json:"anchor"`
	SkillVersionID string          `json:"skill_version_id"`
	SkillDigest    string          `json:"skill_digest"`
	Policies       json.RawMessage `json:"policies"`
	SkillRules     json.RawMessage `json:"skill_rules"`
	Replica        string          `json:"replica"`
	RequestID      string          `json:"request_id"`
	PrevHash       string          `json:"prev_hash"`
	Hash           string          `json:"hash"`
	Format         int16           `json:"format"`
	KeyID          string          `json:"key_id"`
	CommittedAt    string          `json:"committed_at"`
}

// ExportTrailer is the last line: the chain proof of each stream.
type ExportTrailer struct {
	Rows    int64         `json:"rows"`
	Streams []ExportProof `json:"streams"`
}

// ExportProof is where a stream's range ends, and the stream's signed
// checkpoint when its seq is in the range.
type ExportProof struct {
	Stream     string            `json:"stream"`
	LastSeq    int64             `json:"last_seq"`
	LastHash   string            `json:"last_hash"`
	Checkpoint *SignedCheckpoint `json:"checkpoint,omitempty"`
}

// exportLine is one line of the file.
type exportLine struct {
	Header  *ExportHeader  `json:"header,omitempty"`
	Row     *ExportRow     `json:"row,omitempty"`
	Trailer *ExportTrailer `json:"trailer,omitempty"`
}

// exportRowOf is a row read from the database as a file line.
func exportRowOf(r *rawRow) *ExportRow {
	return &ExportRow{ID: r.ID, Stream: r.Stream, Seq: r.Seq, Time: r.Time.UTC().Format(time.RFC3339Nano),
		Kind: string(r.Kind), Actor: r.Actor, AgentName: r.AgentName, AgentNamespace: r.AgentNamespace,
		AgentUID: r.AgentUID, Org: r.Org, Action: r.Action, Context: json.RawMessage(r.ctxJSON),
		Outcome: r.Outcome, Reason: r.Reason, Message: r.Message, Anchor: r.Anchor,
		SkillVersionID: r.SkillVersionID, SkillDigest: r.SkillDigest, Policies: json.RawMessage(r.polJSON),
		SkillRules: json.RawMessage(r.rulesJSON), Replica: r.Replica, RequestID: r.RequestID,
		PrevHash: r.PrevHash, Hash: r.Hash, Format: r.Format, KeyID: r.KeyID,
		CommittedAt: r.CommittedAt.UTC().Format(time.RFC3339Nano)}
}

// raw is the file row as a row read back, for the row checker.
func (e *ExportRow) raw() (rawRow, error) {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return rawRow{}, fmt.Errorf("time %q is not RFC 3339", e.Time)
	}
	var r rawRow
	r.Record = Record{ID: e.ID, Time: t.UTC(), Kind: Kind(e.Kind), Actor: e.Actor, AgentName: e.AgentName,
		AgentNamespace: e.AgentNamespace, AgentUID: e.AgentUID, Org: e.Org, Action: e.Action,
		Outcome: e.Outcome, Reason: e.Reason, Message: e.Message, Anchor: e.Anchor,
		SkillVersionID: e.SkillVersionID, SkillDigest: e.SkillDigest, Replica: e.Replica, RequestID: e.RequestID}
	r.Stream, r.Seq, r.PrevHash, r.Hash, r.Format, r.KeyID = e.Stream, e.Seq, e.PrevHash, e.Hash, e.Format, e.KeyID
	r.ctxJSON, r.polJSON, r.rulesJSON = string(e.Context), string(e.Policies), string(e.SkillRules)
	return r, nil
}

// lineReader reads a file's lines, each at most MaxExportLine bytes.
type lineReader struct {
	br   *bufio.Reader
	n    int // lines read
	line []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// errLineCut is a last line without its newline: the file was cut.
var errLineCut = errors.New("the line has no newline at its end: the file was cut short")

// errLineLong is a line over MaxExportLine.
type errLineLong struct{}

func (errLineLong) Error() string {
	return fmt.Sprintf("the line is longer than %d bytes, the format's bound", MaxExportLine)
}

// next reads the next line without its newline; io.EOF after the last.
func (l *lineReader) next() ([]byte, error) {
	l.line = l.line[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		if len(l.line)+len(chunk) > MaxExportLine+1 {
			l.n++
			return nil, errLineLong{}
		}
		l.line = append(l.line, chunk...)
		switch {
		case err == nil:
			l.n++
			return bytes.TrimSuffix(l.line[:len(l.line)-1], []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(l.line) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			l.n++
			return nil, errLineCut
		default:
			return nil, err
		}
	}
}

// parseLine decodes one line: exactly one of header, row, trailer, and no
// field the format does not have.
func parseLine(b []byte) (exportLine, error) {
	var l exportLine
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return l, fmt.Errorf("not a line of the format: %w", err)
	}
	if d.More() {
		return l, errors.New("not a line of the format: more than one JSON value")
	}
	n := 0
	for _, set := range []bool{l.Header != nil, l.Row != nil, l.Trailer != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return l, errors.New(`not a line of the format: it must hold exactly one of "header", "row", "trailer"`)
	}
	return l, nil
}

// checkHeader checks what a header says before any row is read.
func checkHeader(h *ExportHeader) error {
	if h.Format != ExportFormat {
		return fmt.Errorf("the header's format is %q, not %q: not a Chron export", h.Format, ExportFormat)
	}
	if h.Version != ExportVersion {
		return fmt.Errorf("the file is version %d of the export format; this claiim reads version %d: use a claiim that reads it",
			h.Version, ExportVersion)
	}
	if len(h.Streams) == 0 || len(h.Streams) > MaxExportStreams {
		return fmt.Errorf("the header names %d streams; a file holds 1 to %d", len(h.Streams), MaxExportStreams)
	}
	seen := map[string]bool{}
	for _, s := range h.Streams {
		switch {
		case s.Stream == "" || len(s.Stream) > 128:
			return errors.New("the header names a stream with no name or a name over 128 bytes")
		case seen[s.Stream]:
			return fmt.Errorf("the header names stream %q twice", s.Stream)
		case s.FromSeq < 1 || s.ToSeq < s.FromSeq:
			return fmt.Errorf("the header's range of stream %q, seq %d to %d, is not a range of rows", s.Stream, s.FromSeq, s.ToSeq)
		case len(s.PrevHash) != len(GenesisHash):
			return fmt.Errorf("the header's prev_hash of stream %q is not a hash", s.Stream)
		case s.FromSeq == 1 && s.PrevHash != GenesisHash:
			return fmt.Errorf("%s: stream %q starts at seq 1, so its prev_hash must be the genesis hash", WhatAnchor, s.Stream)
		case s.CheckpointSeq != 0 && (s.CheckpointSeq < s.FromSeq || s.CheckpointSeq > s.ToSeq):
			return fmt.Errorf("the header's checkpoint_seq of stream %q is outside its range", s.Stream)
		case len(s.KeyIDs) > maxKeys:
			return fmt.Errorf("the header names %d keys for stream %q, at most %d", len(s.KeyIDs), s.Stream, maxKeys)
		}
		seen[s.Stream] = true
	}
	return nil
}

// WhatAnchor begins the problem of a file whose anchor was changed.
const WhatAnchor = "anchor changed"

// ReadExportHeader reads and checks a file's header (its first line),
// e.g. to learn which keys VerifyFile will need.
func ReadExportHeader(r io.Reader) (ExportHeader, error) {
	b, err := newLineReader(r).next()
	if err != nil {
		return ExportHeader{}, fmt.Errorf("%s: reading the header: %w", WhatNotExport, err)
	}
	l, err := parseLine(b)
	switch {
	case err != nil:
		return ExportHeader{}, fmt.Errorf("%s: %w", WhatNotExport, err)
	case l.Header == nil:
		return ExportHeader{}, fmt.Errorf("%s: the first line is not a header", WhatNotExport)
	}
	return *l.Header, checkHeader(l.Header)
}
