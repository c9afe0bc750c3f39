package chron

// Prune records: the signed statement that a stream's rows 1 to Through
// were removed on purpose, after they were exported. Each is a Chron row of
// kind chron.pruned, written before the rows are dropped; Verify starts a
// stream whose first stored row is past seq 1 only from a prune record
// that ends right below it, signed by the stream's component, so that a
// pruned stream verifies and a truncated one does not
// (docs/scale.md, "Partitioning and retention").

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// KindPruned is the kind of a prune record's row.
const KindPruned Kind = "chron.pruned"

// ReasonPruned is its reason.
const ReasonPruned = "PRUNED"

// Prune says that rows 1 to Through of Stream were pruned; Hash is row
// Through's hash (the next row's prev_hash), Export the SHA-256 of the
// export file that holds row Through.
type Prune struct {
	Stream  string
	Through int64
	Hash    string
	Export  string
	Time    time.Time
}

// SignedPrune is a Prune signed by a signing key of the stream's
// component.
type SignedPrune struct {
	Prune
	KeyID string
	Sig   string
}

// pruneDomain starts every signed prune message: never taken for a
// checkpoint's signature, nor a checkpoint's for it.
const pruneDomain = "claiim chron prune v1\n"

func (p Prune) message() []byte {
	b, _ := json.Marshal(struct {
		Stream  string `json:"stream"`
		Through int64  `json:"through_seq"`
		Hash    string `json:"hash"`
		Export  string `json:"export_sha256"`
		Time    string `json:"time"`
	}{p.Stream, p.Through, p.Hash, p.Export, p.Time.UTC().Format(time.RFC3339Nano)})
	return append([]byte(pruneDomain), b...)
}

// Sign signs p with k, a key of the stream's component.
func (p Prune) Sign(k SigningKey) (SignedPrune, error) {
	p.Time = p.Time.UTC().Truncate(time.Microsecond) // as a row's context keeps it
	sig, err := signFor(k, p.Stream, "prune record", p.message())
	if err != nil {
		return SignedPrune{}, err
	}
	return SignedPrune{Prune: p, KeyID: k.ID, Sig: sig}, nil
}

// Verify checks the signature with the published keys.
func (s SignedPrune) Verify(keys PublicKeys) error {
	return verifyFor(keys, s.KeyID, s.Stream, s.Sig, s.message())
}

// Record is the prune record's Chron row. The context's names avoid the
// words that mask a value (mask.go).
func (s SignedPrune) Record() Record {
	return Record{
		Kind:    KindPruned,
		Outcome: OutcomeAllow,
		Reason:  ReasonPruned,
		Message: fmt.Sprintf("rows 1 to %d of stream %s were pruned after their export (sha256 %s)", s.Through, s.Stream, s.Export),
		Context: map[string]any{"stream": s.Stream, "through_seq": s.Through, "hash": s.Hash, "export_sha256": s.Export,
			"time": s.Time.UTC().Format(time.RFC3339Nano), "signer": s.KeyID, "signature": s.Sig},
	}
}

// pruneFromContext reads a prune record's row context back.
func pruneFromContext(text string) (SignedPrune, error) {
	var c struct {
		Stream  string  `json:"stream"`
		Through float64 `json:"through_seq"`
		Hash    string  `json:"hash"`
		Export  string  `json:"export_sha256"`
		Time    string  `json:"time"`
		Signer  string  `json:"signer"`
		Sig     string  `json:"signature"`
	}
	if err := json.Unmarshal([]byte(text), &c); err != nil {
		return SignedPrune{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, c.Time)
	if err != nil || c.Stream == "" || c.Through < 1 || c.Through != float64(int64(c.Through)) || len(c.Hash) != len(GenesisHash) {
		return SignedPrune{}, fmt.Errorf("not a prune record")
	}
	return SignedPrune{Prune: Prune{Stream: c.Stream, Through: int64(c.Through), Hash: c.Hash, Export: c.Export, Time: t},
		KeyID: c.Signer, Sig: c.Sig}, nil
}

// maxPrunes bounds the prune records Verify reads.
const maxPrunes = 100000

// readPrunes reads every prune record, by stream. A row of kind
// chron.pruned that is not one is left out: its stream then verifies (or
// not) without it.
func readPrunes(ctx context.Context, pool *pgxpool.Pool) (map[string][]SignedPrune, error) {
	rows, err := pool.Query(ctx, "SELECT context::text FROM chron_records WHERE kind = $1 LIMIT $2", string(KindPruned), maxPrunes)
	if err != nil {
		return nil, fmt.Errorf("chron: reading prune records: %w", err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("chron: reading prune records: %w", err)
	}
	out := map[string][]SignedPrune{}
	for _, t := range texts {
		if p, err := pruneFromContext(t); err == nil {
			out[p.Stream] = append(out[p.Stream], p)
		}
	}
	return out, nil
}

// pruneStart is where Verify starts a stream that prune records name:
// from the record ending right below its first stored row, its signature
// checked with pubs (unchecked: none given). found is false when the
// stream starts at seq 1 or no record ends below it; the row checker then
// reports the missing rows.
func pruneStart(ctx context.Context, pool *pgxpool.Pool, stream string, prunes []SignedPrune, pubs PublicKeys) (
	start SignedPrune, found bool, problem *Problem, err error) {
	var first int64
	if err := pool.QueryRow(ctx, "SELECT coalesce(min(seq), 0) FROM chron_records WHERE stream = $1", stream).Scan(&first); err != nil {
		return start, false, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
	}
	if first <= 1 {
		return start, false, nil, nil
	}
	for _, p := range prunes {
		if p.Through != first-1 {
			continue
		}
		if len(pubs) > 0 {
			if err := p.Verify(pubs); err != nil {
				return start, false, &Problem{Stream: stream, Seq: first, What: fmt.Sprintf(
					"%s: the record of seq 1 to %d being pruned %s", WhatPruneInvalid, p.Through, err)}, nil
			}
		}
		return p, true, nil, nil
	}
	return start, false, nil, nil
}

// WhatPruneInvalid begins the problem of a prune record that does not
// verify.
const WhatPruneInvalid = "prune record invalid"
