package chron

// Export: a stream's rows (or every stream's rows committed before a
// time) written to an export file (exportfile.go) with their chain proof,
// for keeping outside PostgreSQL and verifying offline (VerifyFile).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExportSelection says which rows Export writes: one stream's range, or
// with Before every stream's rows committed before it.
type ExportSelection struct {
	Stream  string
	FromSeq int64 // 0: the stream's first stored row
	ToSeq   int64 // 0: its last
	// Before selects, in every stream, the longest run of rows from its
	// first stored row that all committed before this time: always a
	// whole prefix of the chain, so that what is exported (and later
	// pruned) never leaves a hole in a stream.
	Before time.Time
}

// ExportOptions says what Export may use beyond the rows.
type ExportOptions struct {
	// Keys recomputes the keyed hashes while exporting; without them v2
	// rows are checked by their links only. Export refuses to write a
	// file whose rows do not verify.
	Keys Keyring
	// Checkpoints are the streams' signed checkpoints as published: one
	// whose seq is in a stream's range goes into the trailer.
	Checkpoints []SignedCheckpoint
	// Now is the header's creation time (default time.Now).
	Now func() time.Time
}

// Export writes the selected rows to w as an export file and returns its
// header and trailer. The rows are checked as they are written, as Verify
// checks them; a problem fails the export (what was written is not a
// whole file: it has no trailer).
func Export(ctx context.Context, pool *pgxpool.Pool, w io.Writer, sel ExportSelection, opts ExportOptions) (ExportHeader, ExportTrailer, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	h := ExportHeader{Format: ExportFormat, Version: ExportVersion, Created: now().UTC()}
	var tr ExportTrailer
	ranges, err := exportRanges(ctx, pool, sel)
	if err != nil {
		return h, tr, err
	}
	if sel.Stream == "" {
		h.Before = sel.Before.UTC()
	}
	cps := map[string]SignedCheckpoint{}
	for _, r := range ranges {
		rng, err := exportAnchor(ctx, pool, r)
		if err != nil {
			return h, tr, err
		}
		for _, cp := range opts.Checkpoints {
			if cp.Stream == rng.Stream && cp.Seq >= rng.FromSeq && cp.Seq <= rng.ToSeq && cp.Seq > rng.CheckpointSeq {
				rng.CheckpointSeq, cps[rng.Stream] = cp.Seq, cp
			}
		}
		h.Streams = append(h.Streams, rng)
	}
	if len(h.Streams) > MaxExportStreams {
		return h, tr, fmt.Errorf("chron: export: %d streams, more than a file holds (%d): export them one --stream at a time",
			len(h.Streams), MaxExportStreams)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	put := func(l exportLine) error {
		buf.Reset()
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("chron: export: encoding a line: %w", err)
		}
		if buf.Len() > MaxExportLine+1 {
			return fmt.Errorf("chron: export: a line of %d bytes is over the format's bound (%d)", buf.Len(), MaxExportLine)
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	if err := put(exportLine{Header: &h}); err != nil {
		return h, tr, err
	}
	scopes := map[string]bool{}
	for _, k := range opts.Keys {
		scopes[k.Scope] = true
	}
	for _, rng := range h.Streams {
		var cp *SignedCheckpoint
		if c, ok := cps[rng.Stream]; ok {
			cp = &c
		}
		proof, n, err := exportStream(ctx, pool, rng, opts.Keys, scopes[ScopeOf(rng.Stream)], cp, put)
		if err != nil {
			return h, tr, err
		}
		proof.Checkpoint = cp
		tr.Rows += n
		tr.Streams = append(tr.Streams, proof)
	}
	return h, tr, put(exportLine{Trailer: &tr})
}

// exportRanges are the selected seq ranges, stream by stream (anchors not
// yet read).
func exportRanges(ctx context.Context, pool *pgxpool.Pool, sel ExportSelection) ([]ExportRange, error) {
	if sel.Stream == "" && sel.Before.IsZero() {
		return nil, errors.New("chron: export: name a stream, or a time to export every stream's rows committed before it")
	}
	streams := []string{sel.Stream}
	if sel.Stream == "" {
		var err error
		if streams, err = streamNames(ctx, pool); err != nil {
			return nil, err
		}
		sort.Strings(streams)
	}
	var out []ExportRange
	for _, s := range streams {
		var first, last int64
		err := pool.QueryRow(ctx, "SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM chron_records WHERE stream = $1", s).
			Scan(&first, &last)
		if err != nil {
			return nil, fmt.Errorf("chron: export: stream %q: %w", s, err)
		}
		if first == 0 {
			return nil, fmt.Errorf("chron: export: stream %q has no rows", s)
		}
		r := ExportRange{Stream: s, FromSeq: first, ToSeq: last}
		if sel.Stream != "" {
			if sel.FromSeq != 0 {
				r.FromSeq = sel.FromSeq
			}
			if sel.ToSeq != 0 {
				r.ToSeq = sel.ToSeq
			}
			if r.FromSeq < first || r.ToSeq > last || r.FromSeq > r.ToSeq {
				return nil, fmt.Errorf("chron: export: stream %q holds seq %d to %d; seq %d to %d is not within it",
					s, first, last, r.FromSeq, r.ToSeq)
			}
			out = append(out, r)
			continue
		}
		// The prefix committed before the time ends before the first row
		// committed at or after it.
		err = pool.QueryRow(ctx, `SELECT coalesce(min(seq) - 1, $3) FROM chron_records
			WHERE stream = $1 AND committed_at >= $2`, s, sel.Before, last).Scan(&r.ToSeq)
		if err != nil {
			return nil, fmt.Errorf("chron: export: stream %q: %w", s, err)
		}
		if r.ToSeq >= r.FromSeq {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("chron: export: no stream has rows committed before %s", sel.Before.UTC().Format(time.RFC3339))
	}
	return out, nil
}

// exportAnchor fills the range's anchor and key ids. The anchor is the
// stored hash of row FromSeq-1; when that row is not stored (pruned), the
// first row's prev_hash, which the prune record signs.
func exportAnchor(ctx context.Context, pool *pgxpool.Pool, r ExportRange) (ExportRange, error) {
	r.PrevHash = GenesisHash
	if r.FromSeq > 1 {
		err := pool.QueryRow(ctx, `SELECT coalesce(
			(SELECT hash FROM chron_records WHERE stream = $1 AND seq = $2 - 1),
			(SELECT prev_hash FROM chron_records WHERE stream = $1 AND seq = $2), '')`, r.Stream, r.FromSeq).Scan(&r.PrevHash)
		if err != nil {
			return r, fmt.Errorf("chron: export: stream %q: reading the anchor: %w", r.Stream, err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT key_id FROM chron_records
		WHERE stream = $1 AND seq BETWEEN $2 AND $3 AND format = 2 ORDER BY 1`, r.Stream, r.FromSeq, r.ToSeq)
	if err != nil {
		return r, fmt.Errorf("chron: export: stream %q: reading its keys: %w", r.Stream, err)
	}
	if r.KeyIDs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return r, fmt.Errorf("chron: export: stream %q: reading its keys: %w", r.Stream, err)
	}
	if r.KeyIDs == nil {
		r.KeyIDs = []string{}
	}
	return r, nil
}

// exportStream writes one range's rows, checking each, and returns its
// proof and row count. The row at cp's seq must have cp's hash.
func exportStream(ctx context.Context, pool *pgxpool.Pool, rng ExportRange, keys Keyring, keyed bool,
	cp *SignedCheckpoint, put func(exportLine) error) (ExportProof, int64, error) {
	c := newRowChecker(rng.Stream, Verified{Seq: rng.FromSeq - 1, Hash: rng.PrevHash}, keys, keyed)
	c.anchored = rng.FromSeq > 1
	var problem *Problem
	for c.head.Seq < rng.ToSeq {
		rows, err := pool.Query(ctx, "SELECT "+rowColumns+", "+nullsColumn+
			" FROM chron_records WHERE stream = $1 AND seq > $2 AND seq <= $3 ORDER BY seq", // a window, as verifyStream's
			rng.Stream, c.head.Seq, min(rng.ToSeq, window(c.head.Seq)))
		if err != nil {
			return ExportProof{}, 0, fmt.Errorf("chron: export: stream %q: %w", rng.Stream, err)
		}
		var raw rawRow
		var nulls, inPage int
		_, err = pgx.ForEachRow(rows, append(raw.dest(), &nulls), func() error {
			inPage++
			what := c.check(&raw, nulls)
			if what == "" && cp != nil && raw.Seq == cp.Seq && raw.Hash != cp.Hash {
				what = WhatRechained + ": the row's hash is not the one signed in its checkpoint"
			}
			if what != "" {
				problem = &Problem{Stream: rng.Stream, Seq: raw.Seq, ID: raw.ID, What: what}
				return errStop
			}
			return put(exportLine{Row: exportRowOf(&raw)})
		})
		if problem != nil {
			return ExportProof{}, 0, fmt.Errorf("chron: export: the database's rows do not verify, so no file is made: %s; "+
				"run `claiim chron verify` and follow docs/security.md (Verifying Chron)", problem)
		}
		if err != nil {
			return ExportProof{}, 0, fmt.Errorf("chron: export: stream %q: %w", rng.Stream, err)
		}
		if inPage == 0 {
			return ExportProof{}, 0, fmt.Errorf("chron: export: stream %q ends at seq %d, before seq %d: rows went missing while exporting",
				rng.Stream, c.head.Seq, rng.ToSeq)
		}
	}
	return ExportProof{Stream: rng.Stream, LastSeq: c.head.Seq, LastHash: c.head.Hash}, c.checked, nil
}
