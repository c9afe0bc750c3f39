package chron

// One-use approvals: a record that carries a Claim inserts its approval's
// id into chron_approval_uses in the same transaction as the record
// (0006_approvals.sql). The primary key decides between concurrent
// claims, on any replica: the loser waits for the winner's transaction
// and, once it commits, finds the id taken; its record is then stored as
// Claim.Taken makes it (the gate: DENY APPROVAL_USED), and the rest of its
// batch is stored as it was.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Claim uses up approval ApprovalID with its record.
type Claim struct {
	ApprovalID string
	// Taken returns the record to store instead when the approval was
	// already used (by another decision, or by this one's earlier try):
	// the same request, another answer. It may change only Outcome,
	// Reason and Message.
	Taken func(Record) Record
}

func (c *Claim) check() error {
	if c.ApprovalID == "" || len(c.ApprovalID) > 64 || c.Taken == nil {
		return fmt.Errorf("%w: a claim needs an approval id of 1 to 64 characters and a Taken", ErrInvalid)
	}
	return nil
}

// claiming reports whether a batch uses up an approval.
func claiming(live []*pending) bool {
	for _, p := range live {
		if p.claim != nil && !p.isFix {
			return true
		}
	}
	return false
}

const claimSQL = `INSERT INTO chron_approval_uses (approval_id, decision_id, stream)
SELECT a, d, $3 FROM unnest($1::text[], $2::text[]) AS u(a, d)
ON CONFLICT (approval_id) DO NOTHING RETURNING approval_id, decision_id`

// insertClaiming stores a batch that uses up approvals in one
// transaction: first the claims, then the rows, chained after the claims
// have decided what each row says. A dup (a known record ID) rolls the
// claims back with the rows, and the batch is retried from the records
// as given.
func (w *Writer) insertClaiming(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}, live []*pending) (time.Time, bool, error) {
	// Lost claims of an earlier attempt of this batch start over.
	byApproval := map[string]*pending{}
	for _, p := range live {
		if p.claim == nil || p.isFix {
			continue
		}
		p.p = *p.orig
		if _, dup := byApproval[p.claim.ApprovalID]; !dup {
			byApproval[p.claim.ApprovalID] = p // a second claim in the batch loses
		}
	}
	// Claimed in a fixed order, so two batches claiming the same ids
	// wait for each other instead of deadlocking.
	ids := make([]string, 0, len(byApproval))
	for id := range byApproval {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	decisions := make([]string, len(ids))
	for i, id := range ids {
		decisions[i] = byApproval[id].p.rec.ID
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, claimSQL, ids, decisions, w.opts.Stream)
	if err != nil {
		return time.Time{}, false, err
	}
	won := map[string]string{} // approval id → decision id
	var a, d string
	if _, err := pgx.ForEachRow(rows, []any{&a, &d}, func() error { won[a] = d; return nil }); err != nil {
		return time.Time{}, false, err
	}
	for _, p := range live {
		if p.claim == nil || p.isFix || won[p.claim.ApprovalID] == p.p.rec.ID && byApproval[p.claim.ApprovalID] == p {
			continue
		}
		r := p.orig.rec
		t := p.claim.Taken(r)
		r.Outcome, r.Reason, r.Message = t.Outcome, t.Reason, t.Message
		lost, err := prepare(&r)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("the record of a used approval: %w", err)
		}
		p.p = lost
	}
	w.chainRows(live)
	return w.insertCommit(ctx, tx, live)
}

// ApprovalUse returns the decision that used approval id, or "" when it
// is unused.
func ApprovalUse(ctx context.Context, pool *pgxpool.Pool, id string) (string, error) {
	var decision string
	err := pool.QueryRow(ctx, "SELECT decision_id FROM chron_approval_uses WHERE approval_id = $1", id).Scan(&decision)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("chron: reading the use of approval %s: %w", id, err)
	}
	return decision, nil
}
