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
	Streams  int
	Rows     int64 // rows checked
	Problems []Problem
}

// verifyPage bounds the rows held in memory at once.
const verifyPage = 1000

// Verify walks every stream in seq order and recomputes each row's hash from
// its stored columns. It reports the first problem of each stream: a row
// whose hash does not match its contents (edited), a gap in seq (deleted),
// or a prev_hash that is not its predecessor's hash (reordered, or an edit
// whose hash was recomputed). A stream is read in pages, each its own query,
// so memory stays bounded and no snapshot is held for the whole walk.
//
// What an unkeyed chain cannot show: rows removed from the end of a stream,
// a whole stream removed, or an edit followed by recomputing every later
// hash. Catching those needs the stream heads (seq, hash) kept somewhere the
// database's superuser cannot write, and compared.
func Verify(ctx context.Context, pool *pgxpool.Pool) (VerifyReport, error) {
	var rep VerifyReport
	streams, err := streamNames(ctx, pool)
	if err != nil {
		return rep, err
	}
	for _, s := range streams {
		rep.Streams++
		n, p, err := verifyStream(ctx, pool, s)
		rep.Rows += n
		if err != nil {
			return rep, err
		}
		if p != nil {
			rep.Problems = append(rep.Problems, *p)
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

func verifyStream(ctx context.Context, pool *pgxpool.Pool, stream string) (int64, *Problem, error) {
	var checked int64
	prefix := streamPrefix(stream)
	prevSeq, prevHash := int64(0), GenesisHash
	var buf []byte
	for {
		rows, err := pool.Query(ctx, "SELECT "+rowColumns+", "+nullsColumn+
			" FROM chron_records WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3", stream, prevSeq, verifyPage)
		if err != nil {
			return checked, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
		}
		var raw rawRow
		var nulls, inPage int
		var problem *Problem
		dest := append(raw.dest(), &nulls)
		_, err = pgx.ForEachRow(rows, dest, func() error {
			inPage++
			checked++
			what := ""
			switch {
			case nulls > 0:
				what = "row changed: a column is NULL"
			case raw.Seq != prevSeq+1 && prevSeq == 0:
				what = fmt.Sprintf("row missing: stream starts at seq %d", raw.Seq)
			case raw.Seq != prevSeq+1:
				what = fmt.Sprintf("row missing: sequence jumps from %d to %d", prevSeq, raw.Seq)
			default:
				var computed string
				var herr error
				computed, buf, herr = rowHash(buf, prefix, &raw)
				switch {
				case herr != nil:
					what = "row changed: " + herr.Error()
				case computed != raw.Hash:
					what = "row changed: hash does not match its contents"
				case raw.PrevHash != prevHash && prevSeq == 0:
					what = "rows out of order: the first row's prev_hash is not the genesis hash"
				case raw.PrevHash != prevHash:
					what = fmt.Sprintf("rows out of order: prev_hash does not match row %d", prevSeq)
				}
			}
			if what != "" {
				problem = &Problem{Stream: stream, Seq: raw.Seq, ID: raw.ID, What: what}
				return errStop
			}
			prevSeq, prevHash = raw.Seq, raw.Hash
			return nil
		})
		if problem != nil {
			return checked, problem, nil
		}
		if err != nil {
			return checked, nil, fmt.Errorf("chron: verify: stream %q: %w", stream, err)
		}
		if inPage < verifyPage {
			return checked, nil, nil
		}
	}
}

var errStop = errors.New("stop at the first problem")

// rowHash recomputes a stored row's hash from its columns alone, encoding
// the JSON columns as Write did (canonFromJSON undoes jsonb's spelling).
func rowHash(buf, prefix []byte, r *rawRow) (string, []byte, error) {
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
	h, buf := chainHash(buf, prefix, r.PrevHash, r.Seq, body)
	return h, buf, nil
}
