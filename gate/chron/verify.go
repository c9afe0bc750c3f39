package chron

import (
	"context"
	"errors"
	"fmt"
	"math"

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
	// Pruned counts the streams verified from a prune record (their rows
	// before it were pruned), PrunesUnsigned those of them whose record's
	// signature was not checked: no public keys were given.
	Pruned, PrunesUnsigned int
	Problems               []Problem
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
	prunes, err := readPrunes(ctx, pool)
	if err != nil {
		return rep, err
	}
	v := verifier{pool: pool, opts: &opts, scopes: map[string]bool{}, prunes: prunes}
	for _, k := range opts.Keys {
		v.scopes[k.Scope] = true
	}
	for _, s := range streams {
		rep.Streams++
		p, head, err := v.stream(ctx, &rep, s, known[s])
		if err != nil {
			return rep, err
		}
		if cp, ok := cps[s]; ok && p == nil {
			if p, err = v.checkpoint(ctx, cp); err != nil {
				return rep, err
			} else if p == nil {
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

// verifier is one VerifyWith run.
type verifier struct {
	pool   *pgxpool.Pool
	opts   *VerifyOptions
	scopes map[string]bool // components whose keys were given
	prunes map[string][]SignedPrune
}

// stream verifies one stream's rows (none when it has no rows stored):
// after opts.From, else from the prune record below its first row, else
// from the genesis.
func (v *verifier) stream(ctx context.Context, rep *VerifyReport, s string, stored bool) (*Problem, Verified, error) {
	from := v.opts.From[s]
	if !stored {
		return nil, from, nil
	}
	anchored := false
	if from.Seq == 0 && len(v.prunes[s]) > 0 {
		pr, ok, p, err := pruneStart(ctx, v.pool, s, v.prunes[s], v.opts.PublicKeys)
		if err != nil || p != nil {
			return p, from, err
		}
		if ok {
			from, anchored = Verified{Seq: pr.Through, Hash: pr.Hash}, true
			rep.Pruned++
			if len(v.opts.PublicKeys) == 0 {
				rep.PrunesUnsigned++
			}
		}
	}
	head, n, unkeyed, p, err := verifyStream(ctx, v.pool, s, from, anchored, v.opts.Keys, v.scopes[ScopeOf(s)])
	rep.Rows += n
	rep.Unkeyed += unkeyed
	return p, head, err
}

// checkpoint compares a stream with its signed checkpoint. A checkpoint
// whose row was pruned is checked against the prune record instead: one
// that verifies, covers its seq, and (ending at it) has its hash.
func (v *verifier) checkpoint(ctx context.Context, cp SignedCheckpoint) (*Problem, error) {
	if err := cp.Verify(v.opts.PublicKeys); err != nil {
		return &Problem{Stream: cp.Stream, Seq: cp.Seq, What: WhatCheckpoint + ": " + err.Error()}, nil
	}
	p, err := checkpointProblem(ctx, v.pool, cp.Checkpoint)
	if p == nil || err != nil {
		return p, err
	}
	for _, pr := range v.prunes[cp.Stream] {
		if pr.Through < cp.Seq || pr.Verify(v.opts.PublicKeys) != nil {
			continue
		}
		if pr.Through == cp.Seq && pr.Hash != cp.Hash {
			return &Problem{Stream: cp.Stream, Seq: cp.Seq, What: WhatRechained +
				": the prune record's hash of the row is not the one signed in its checkpoint"}, nil
		}
		return nil, nil
	}
	return p, nil
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

// verifyStream walks one stream after from (anchored: a row that is not
// stored, as a prune record names it). keyed says the caller holds
// keys of the stream's component, so a v2 row under an unknown key is a
// problem rather than one checked by its links only.
func verifyStream(ctx context.Context, pool *pgxpool.Pool, stream string, from Verified, anchored bool, keys Keyring, keyed bool) (
	head Verified, checked, unkeyed int64, problem *Problem, err error) {
	c := newRowChecker(stream, from, keys, keyed)
	c.anchored = anchored
	// Pages are windows of seq, not LIMITs: without fresh statistics (a
	// table loaded since its last ANALYZE) PostgreSQL answers "seq > $2
	// ORDER BY seq LIMIT n" by sorting the rest of the stream, each page
	// (850 ms per page at 550k rows), where a window is one index range.
	hi := window(c.head.Seq)
	for {
		rows, err := pool.Query(ctx, "SELECT "+rowColumns+", "+nullsColumn+
			" FROM chron_records WHERE stream = $1 AND seq > $2 AND seq <= $3 ORDER BY seq", stream, c.head.Seq, hi)
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
		if inPage > 0 {
			hi = window(c.head.Seq)
			continue
		}
		// An empty window: the stream ends here, or rows are missing up to
		// a later one, which the checker must see.
		var next *int64
		if err := pool.QueryRow(ctx, "SELECT min(seq) FROM chron_records WHERE stream = $1 AND seq > $2", stream, hi).Scan(&next); err != nil {
			return c.head, c.checked, c.unkeyed, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
		}
		if next == nil {
			return c.head, c.checked, c.unkeyed, nil, nil
		}
		hi = window(*next - 1)
	}
}

// window is the last seq of the page after seq: verifyPage further, or
// the largest seq, so a row stored at the top of bigint's range (a
// tampered one) ends the walk instead of wrapping it around.
func window(seq int64) int64 {
	if seq > math.MaxInt64-verifyPage {
		return math.MaxInt64
	}
	return seq + verifyPage
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
