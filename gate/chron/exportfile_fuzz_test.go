package chron

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// syntheticExport builds the export file of n rows of stream gate/0,
// chained as a writer would (under key; v1 when nil), without a database.
func syntheticExport(tb testing.TB, n int, key *ChainKey) []byte {
	tb.Helper()
	ch := newChainer("gate/0", key)
	rng := ExportRange{Stream: "gate/0", FromSeq: 1, ToSeq: int64(n), PrevHash: GenesisHash, KeyIDs: []string{}}
	if key != nil {
		rng.KeyIDs = []string{key.ID}
	}
	var b bytes.Buffer
	put := func(l exportLine) {
		line, err := json.Marshal(l)
		if err != nil {
			tb.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	put(exportLine{Header: &ExportHeader{Format: ExportFormat, Version: ExportVersion, Created: base, Streams: []ExportRange{rng}}})
	prev := GenesisHash
	for i := range n {
		p, err := prepare(decision(i))
		if err != nil {
			tb.Fatal(err)
		}
		h, _ := ch.hash(nil, prev, int64(i+1), p.body)
		raw := rawRow{Row: Row{Record: p.rec, Stream: "gate/0", Seq: int64(i + 1), PrevHash: prev, Hash: h,
			Format: ch.format, KeyID: ch.keyID}, ctxJSON: string(p.ctxJSON), polJSON: string(p.polJSON), rulesJSON: string(p.rulesJSON)}
		put(exportLine{Row: exportRowOf(&raw)})
		prev = h
	}
	put(exportLine{Trailer: &ExportTrailer{Rows: int64(n), Streams: []ExportProof{{Stream: "gate/0", LastSeq: int64(n), LastHash: prev}}}})
	return b.Bytes()
}

var fuzzKey = ChainKey{ID: KeyID(bytes.Repeat([]byte{7}, keyLen)), Scope: ScopeGate, Secret: bytes.Repeat([]byte{7}, keyLen)}

// FuzzVerifyFile: whatever the file, VerifyFile ends without panicking,
// within its bounds; a file it accepts is whole: every stream's rows from
// its header's first seq to its last, as the trailer says.
func FuzzVerifyFile(f *testing.F) {
	f.Add(syntheticExport(f, 3, nil))
	f.Add(syntheticExport(f, 2, &fuzzKey))
	f.Add([]byte(`{"header":{"format":"claiim.io/chron-export","version":1,"streams":[]}}` + "\n"))
	f.Add([]byte("{\"row\":{}}\n{\"trailer\":{}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := VerifyFile(bytes.NewReader(b), FileVerifyOptions{Keys: keyring(KeySet{Chain: map[string]ChainKey{fuzzKey.ID: fuzzKey}})})
		var p *FileProblem
		switch {
		case errors.As(err, &p):
			if p.Line < 1 || p.Line > bytes.Count(b, []byte("\n"))+2 || p.What == "" {
				t.Fatalf("problem at an impossible line: %v", p)
			}
			return
		case err != nil:
			t.Fatalf("an in-memory file gave a reading error: %v", err)
		}
		var want int64
		for i, s := range rep.Header.Streams {
			want += s.ToSeq - s.FromSeq + 1
			if rep.Proofs[i].Stream != s.Stream || rep.Proofs[i].LastSeq != s.ToSeq {
				t.Fatalf("accepted a file whose proof is not its header's range: %+v", rep)
			}
		}
		if rep.Rows != want {
			t.Fatalf("accepted %d rows for ranges of %d", rep.Rows, want)
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestVerifyFileBoundsLines: a line over the bound is refused after
// reading about the bound, not the whole line.
func TestVerifyFileBoundsLines(t *testing.T) {
	file := syntheticExport(t, 2, nil)
	if _, err := VerifyFile(bytes.NewReader(file), FileVerifyOptions{}); err != nil {
		t.Fatalf("the synthetic file: %v", err)
	}
	huge := strings.NewReader(`{"row":{"message":"` + strings.Repeat("x", 16*MaxExportLine))
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(file[:bytes.IndexByte(file, '\n')+1]), huge)}
	_, err := VerifyFile(cr, FileVerifyOptions{})
	var p *FileProblem
	if !errors.As(err, &p) || p.Line != 2 || !strings.Contains(p.What, "longer than") {
		t.Fatalf("an over-long line: %v", err)
	}
	if cr.n > 2*MaxExportLine {
		t.Fatalf("read %d bytes to refuse a line over %d", cr.n, MaxExportLine)
	}
	many := make([]ExportRange, MaxExportStreams+1)
	for i := range many {
		many[i] = ExportRange{Stream: "gate/" + strings.Repeat("1", i%5+1), FromSeq: 1, ToSeq: 1, PrevHash: GenesisHash}
	}
	if err := checkHeader(&ExportHeader{Format: ExportFormat, Version: ExportVersion, Streams: many}); err == nil ||
		!strings.Contains(err.Error(), "a file holds 1 to") {
		t.Fatalf("a header of too many streams: %v", err)
	}
}
