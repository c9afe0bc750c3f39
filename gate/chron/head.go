package chron

// The chain head: where a stream continues, read at start and after a
// failed commit.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// reload reads the chain head of the stream: after a failed commit the
// batch may or may not have landed, so memory cannot be trusted.
func (w *Writer) reload(ctx context.Context) error {
	var seq int64
	var hash string
	err := w.pool.QueryRow(ctx,
		"SELECT seq, hash FROM chron_records WHERE stream = $1 ORDER BY seq DESC LIMIT 1", w.opts.Stream).Scan(&seq, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		seq, hash = 0, GenesisHash
	case err != nil:
		return fmt.Errorf("chron: reading the head of stream %q: %w", w.opts.Stream, err)
	}
	w.lastSeq, w.lastHash, w.stale = seq, hash, false
	w.setHead(seq, hash)
	return nil
}
