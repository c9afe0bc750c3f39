package chron

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Problem is the first break found in one stream's chain.
type Problem struct {
	Stream string
	Seq    int64
	ID     string
	What   string
}

func (p Problem) String() string {
	return fmt.Sprintf("stream %q seq %d (id %s): %s", p.Stream, p.Seq, p.ID, p.What)
}

// VerifyReport summarizes a Verify run.
type VerifyReport struct {
	Streams     int
	Rows        int64 // rows checked
	Unkeyed     int64 // v2 rows checked by their links only: no key of their component was given
	Checkpoints int   // signed checkpoints compared with their streams
	Problems    []Problem
	// Heads is where each stream without a problem was verified up to;
	// pass it as VerifyOptions.From to resume there.
	Heads map[string]Verified
}

// Verified is a stream's head as verified.
type Verified struct {
	Seq    int64
	Hash   string
	Format int16
}

// VerifyOptions says what Verify may use beyond the rows.
type VerifyOptions struct {
	// Keys recomputes the HMAC of v2 rows. A component none of whose keys
	// are given has its v2 rows checked by their links only (seq and
	// prev_hash; VerifyReport.Unkeyed); with some of its keys, a row under
	// an unknown key is a problem.
	Keys Keyring
	// Checkpoints are the streams' last signed checkpoints as published,
	// checked with PublicKeys; each stream must reach its checkpoint with
	// the checkpoint's hash.
	Checkpoints []SignedCheckpoint
	PublicKeys  PublicKeys
	// From resumes streams after heads an earlier run verified, without
	// reading their rows again (checkpoints are still checked whole).
	From map[string]Verified
}

// verifyPage bounds the rows held in memory at once.
const verifyPage = 1000

// Verify is VerifyWith without keys or checkpoints: v1 rows are
// recomputed, v2 rows checked by their links only.
func Verify(ctx context.Context, pool *pgxpool.Pool) (VerifyReport, error) {
	return VerifyWith(ctx, pool, VerifyOptions{})
}

// VerifyWith walks every stream in seq order and checks each row from its
// stored columns. It reports the first problem of each stream: a row
// whose hash does not match its contents (edited; for v2 rows, only with
// the key), a gap in seq (deleted), a prev_hash that is not its
// predecessor's hash (reordered, or an edit whose hash was recomputed), a
// v2 row followed by a v1 one (rechained in the unkeyed format), and
// against the signed checkpoints: rows cut from the tail, a stream
// rewritten and rechained, a whole stream removed. A stream is read in
// pages, each its own query, so memory stays bounded and no snapshot is
// held for the whole walk.
//
// What remains unseen: rows cut from a stream's tail after its last
// checkpoint (at most one checkpoint interval of rows, docs/security.md),
// and, without the chain key, an edit of a v2 row's content that keeps
// its hash column.
func VerifyWith(ctx context.Context, pool *pgxpool.Pool, opts VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Heads: map[string]Verified{}}
	streams, err := streamNames(ctx, pool)
	if err != nil {
		return rep, err
	}
	cps := map[string]SignedCheckpoint{}
	for _, cp := range opts.Checkpoints {
		if old, dup := cps[cp.Stream]; !dup || cp.Seq > old.Seq {
			cps[cp.Stream] = cp
		}
	}
	known := map[string]bool{}
	for _, s := range streams {
		known[s] = true
	}
	for s := range cps {
		if !known[s] {
			streams = append(streams, s)
		}
	}
	scopes := map[string]bool{}
	for _, k := range opts.Keys {
		scopes[k.Scope] = true
	}
	for _, s := range streams {
		rep.Streams++
		var p *Problem
		from := opts.From[s]
		head := from
		if known[s] {
			var n, unkeyed int64
			var err error
			head, n, unkeyed, p, err = verifyStream(ctx, pool, s, from, opts.Keys, scopes[ScopeOf(s)])
			rep.Rows += n
			rep.Unkeyed += unkeyed
			if err != nil {
				return rep, err
			}
		}
		if cp, ok := cps[s]; ok && p == nil {
			if err := cp.Verify(opts.PublicKeys); err != nil {
				p = &Problem{Stream: s, Seq: cp.Seq, What: WhatCheckpoint + ": " + err.Error()}
			} else if p, err = checkpointProblem(ctx, pool, cp.Checkpoint); err != nil {
				return rep, err
			} else {
				rep.Checkpoints++
			}
		}
		if p != nil {
			rep.Problems = append(rep.Problems, *p)
		} else if head.Seq > 0 {
			rep.Heads[s] = head
		}
	}
	return rep, nil
}

// streamNames finds the distinct streams by skipping through the
// (stream, seq) index: one probe per stream instead of a scan of all rows.
func streamNames(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `
		WITH RECURSIVE s(stream) AS (
			(SELECT stream FROM chron_records ORDER BY stream LIMIT 1)
			UNION ALL
			SELECT (SELECT c.stream FROM chron_records c WHERE c.stream > s.stream ORDER BY c.stream LIMIT 1)
			FROM s WHERE s.stream IS NOT NULL)
		SELECT stream FROM s WHERE stream IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("chron: verify: listing streams: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("chron: verify: listing streams: %w", err)
	}
	return names, nil
}

// verifyStream walks one stream after from. keyed says the caller holds
// keys of the stream's component, so a v2 row under an unknown key is a
// problem rather than one checked by its links only.
func verifyStream(ctx context.Context, pool *pgxpool.Pool, stream string, from Verified, keys Keyring, keyed bool) (
	head Verified, checked, unkeyed int64, problem *Problem, err error) {
	c := newRowChecker(stream, from, keys, keyed)
	for {
		rows, err := pool.Query(ctx, "SELECT "+rowColumns+", "+nullsColumn+
			" FROM chron_records WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3", stream, c.head.Seq, verifyPage)
		if err != nil {
			return c.head, c.checked, c.unkeyed, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
		}
		var raw rawRow
		var nulls, inPage int
		dest := append(raw.dest(), &nulls)
		_, err = pgx.ForEachRow(rows, dest, func() error {
			inPage++
			if what := c.check(&raw, nulls); what != "" {
				problem = &Problem{Stream: stream, Seq: raw.Seq, ID: raw.ID, What: what}
				return errStop
			}
			return nil
		})
		if problem != nil {
			return c.head, c.checked, c.unkeyed, problem, nil
		}
		if err != nil {
			return c.head, c.checked, c.unkeyed, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
		}
		if inPage < verifyPage {
			return c.head, c.checked, c.unkeyed, nil, nil
		}
	}
}

var errStop = errors.New("stop at the first problem")

// rowHash recomputes a stored row's hash from its columns alone, encoding
// the JSON columns as Write did (canonFromJSON undoes jsonb's spelling).
func rowHash(buf []byte, c *chainer, r *rawRow) (string, []byte, error) {
	ctxJSON, err := canonFromJSON([]byte(r.ctxJSON))
	if err != nil {
		return "", buf, fmt.Errorf("context is not JSON")
	}
	polJSON, err := canonFromJSON([]byte(r.polJSON))
	if err != nil {
		return "", buf, fmt.Errorf("policies are not JSON")
	}
	rulesJSON, err := canonFromJSON([]byte(r.rulesJSON))
	if err != nil {
		return "", buf, fmt.Errorf("skill_rules are not JSON")
	}
	body, err := contentBody(&r.Record, ctxJSON, polJSON, rulesJSON)
	if err != nil {
		return "", buf, err
	}
	h, buf := c.hash(buf, r.PrevHash, r.Seq, body)
	return h, buf, nil
}
