package chron

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// exportFixture writes n keyed rows to stream gate/0 (and three to
// gate/1) and returns the pool, the keys, and gate/0's rows.
func exportFixture(t *testing.T, n int) (*pgxpool.Pool, KeySet, []Row) {
	t.Helper()
	pool, _ := newDB(t)
	keys, err := NewKeySet(ScopeGate, false)
	if err != nil {
		t.Fatal(err)
	}
	ck := keys.ChainKey()
	var rows []Row
	for _, s := range []string{"gate/0", "gate/1"} {
		w := newWriter(t, pool, WriterOptions{Stream: s, Key: &ck})
		for i := range map[string]int{"gate/0": n, "gate/1": 3}[s] {
			row, err := w.Write(context.Background(), decision(i))
			if err != nil {
				t.Fatal(err)
			}
			if s == "gate/0" {
				rows = append(rows, row)
			}
		}
	}
	return pool, keys, rows
}

func keyring(sets ...KeySet) Keyring {
	r := Keyring{}
	r.Add(sets...)
	return r
}

func publics(sets ...KeySet) PublicKeys {
	p := PublicKeys{}
	for _, s := range sets {
		for _, k := range s.Publics() {
			p[k.ID] = k
		}
	}
	return p
}

func export(t *testing.T, pool *pgxpool.Pool, sel ExportSelection, opts ExportOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, _, err := Export(context.Background(), pool, &b, sel, opts); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestExportVerifiesOffline: an export verifies without the database,
// with and without the chain key, and its checkpoint with the public key.
func TestExportVerifiesOffline(t *testing.T) {
	pool, keys, rows := exportFixture(t, 6)
	cp, err := Checkpoint{Stream: "gate/0", Seq: 4, Hash: rows[3].Hash, Time: base}.Sign(keys.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	file := export(t, pool, ExportSelection{Stream: "gate/0"}, ExportOptions{Keys: keyring(keys), Checkpoints: []SignedCheckpoint{cp}})

	rep, err := VerifyFile(bytes.NewReader(file), FileVerifyOptions{Keys: keyring(keys), PublicKeys: publics(keys)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 6 || rep.Unkeyed != 0 || rep.Checkpoints != 1 || len(rep.Proofs) != 1 ||
		rep.Proofs[0].LastSeq != 6 || rep.Proofs[0].LastHash != rows[5].Hash || len(rep.Digest) != 64 {
		t.Fatalf("report: %+v", rep)
	}
	if h := rep.Header.Streams[0]; h.FromSeq != 1 || h.ToSeq != 6 || h.PrevHash != GenesisHash ||
		len(h.KeyIDs) != 1 || h.KeyIDs[0] != keys.CurrentChain || h.CheckpointSeq != 4 {
		t.Fatalf("header: %+v", h)
	}
	// Without keys: v2 rows by their links only, the checkpoint compared
	// with its row but not its signature.
	rep, err = VerifyFile(bytes.NewReader(file), FileVerifyOptions{})
	if err != nil || rep.Unkeyed != 6 || rep.Unsigned != 1 || rep.Checkpoints != 0 {
		t.Fatalf("without keys: %+v, %v", rep, err)
	}
	// A key of another component is not this stream's.
	other, _ := NewKeySet(ScopeManager, true)
	if _, err := VerifyFile(bytes.NewReader(file), FileVerifyOptions{PublicKeys: publics(other)}); err == nil ||
		!strings.Contains(err.Error(), WhatCheckpoint) {
		t.Fatalf("a checkpoint under an unpublished key: %v", err)
	}

	// --before: every stream's prefix committed before the time.
	file = export(t, pool, ExportSelection{Before: time.Now().Add(time.Hour)}, ExportOptions{})
	rep, err = VerifyFile(bytes.NewReader(file), FileVerifyOptions{Keys: keyring(keys)})
	if err != nil || rep.Rows != 9 || len(rep.Header.Streams) != 2 {
		t.Fatalf("--before: %+v, %v", rep, err)
	}
	if _, _, err := Export(context.Background(), pool, &bytes.Buffer{}, ExportSelection{Before: base}, ExportOptions{}); err == nil {
		t.Fatal("nothing was committed before the rows' time, yet the export did not say so")
	}
}

// TestVerifyFileRefusesTampering: each way of changing a file is refused
// with its own words and the line at fault.
func TestVerifyFileRefusesTampering(t *testing.T) {
	pool, keys, rows := exportFixture(t, 6)
	whole := export(t, pool, ExportSelection{Stream: "gate/0"}, ExportOptions{})
	part := export(t, pool, ExportSelection{Stream: "gate/0", FromSeq: 3, ToSeq: 5}, ExportOptions{})
	lines := func(b []byte) []string { ls := strings.SplitAfter(string(b), "\n"); return ls[:len(ls)-1] }
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	cases := []struct {
		name string
		file func() []byte
		line int
		what string
	}{
		{"field edited", func() []byte {
			ls := lines(whole)
			ls[3] = strings.Replace(ls[3], `"outcome":"DENY"`, `"outcome":"ALLOW"`, 1)
			return join(ls)
		}, 4, WhatRowChanged + ": hash does not match its contents"},
		{"line dropped", func() []byte {
			ls := lines(whole)
			return join(append(ls[:3:3], ls[4:]...))
		}, 4, WhatRowMissing + ": sequence jumps from 2 to 4: rows 3 to 3 are not in the file"},
		{"lines swapped", func() []byte {
			ls := lines(whole)
			ls[3], ls[4] = ls[4], ls[3]
			return join(ls)
		}, 4, WhatOutOfOrder + ": seq 4 (line 4) comes before seq 3 (line 5)"},
		{"tail cut", func() []byte {
			ls := lines(whole)
			return join(ls[:5])
		}, 6, WhatTailCut + ": the file ends after line 5 without its trailer"},
		{"cut inside a line", func() []byte { return whole[:len(whole)-10] }, 8, WhatTailCut + ": the line has no newline"},
		{"anchor changed", func() []byte {
			ls := lines(part)
			ls[0] = strings.Replace(ls[0], rows[1].Hash, rows[0].Hash, 1)
			return join(ls)
		}, 2, WhatAnchor},
		{"genesis anchor changed", func() []byte {
			ls := lines(whole)
			ls[0] = strings.Replace(ls[0], GenesisHash, rows[0].Hash, 1)
			return join(ls)
		}, 1, WhatAnchor},
		{"header range widened", func() []byte {
			ls := lines(whole)
			ls[0] = strings.Replace(ls[0], `"to_seq":6`, `"to_seq":7`, 1)
			return join(ls)
		}, 8, WhatTailCut + ": the file's rows of the stream end at seq 6, but its header says seq 7"},
		{"trailer hash changed", func() []byte {
			ls := lines(whole)
			ls[7] = strings.Replace(ls[7], rows[5].Hash, rows[4].Hash, 1)
			return join(ls)
		}, 8, WhatTrailer},
		{"line after the trailer", func() []byte { return append(append([]byte{}, whole...), lines(whole)[1]...) }, 9, WhatNotExport},
		{"other version", func() []byte {
			ls := lines(whole)
			ls[0] = strings.Replace(ls[0], `"version":1`, `"version":2`, 1)
			return join(ls)
		}, 1, "the file is version 2 of the export format"},
		{"unknown field", func() []byte {
			ls := lines(whole)
			ls[2] = strings.Replace(ls[2], `"row":{`, `"row":{"extra":1,`, 1)
			return join(ls)
		}, 3, WhatNotExport},
		{"empty", func() []byte { return nil }, 1, WhatNotExport},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyFile(bytes.NewReader(c.file()), FileVerifyOptions{Keys: keyring(keys)})
			var p *FileProblem
			if !errors.As(err, &p) {
				t.Fatalf("want a FileProblem, got %v", err)
			}
			t.Log(p)
			if p.Line != c.line || !strings.HasPrefix(p.What, c.what) {
				t.Fatalf("got %q, want line %d: %s", p.Error(), c.line, c.what)
			}
		})
	}
	// The untouched files verify: the cases above failed for their edit.
	for _, f := range [][]byte{whole, part} {
		if _, err := VerifyFile(bytes.NewReader(f), FileVerifyOptions{Keys: keyring(keys)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportRefusesABrokenChain: a file is never made of rows that do not
// verify, so that nothing is pruned on the strength of a bad export.
func TestExportRefusesABrokenChain(t *testing.T) {
	pool, keys, _ := exportFixture(t, 5)
	tamper(t, pool, "UPDATE chron_records SET outcome = 'ALLOW' WHERE stream = 'gate/0' AND seq = 3")
	var b bytes.Buffer
	_, _, err := Export(context.Background(), pool, &b, ExportSelection{Stream: "gate/0"}, ExportOptions{Keys: keyring(keys)})
	if err == nil || !strings.Contains(err.Error(), "seq 3") || !strings.Contains(err.Error(), WhatRowChanged) {
		t.Fatalf("export of an edited row: %v", err)
	}
	if _, err := VerifyFile(&b, FileVerifyOptions{}); err == nil {
		t.Fatal("the partial output of a failed export verified as a whole file")
	}
	_, _, err = Export(context.Background(), pool, &b, ExportSelection{Stream: "gate/0", FromSeq: 4, ToSeq: 9}, ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds seq 1 to 5") {
		t.Fatalf("a range past the head: %v", err)
	}
}
