package chron

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tamper runs stmts as a superuser with the append-only triggers disabled,
// the way an attacker with full database access would.
func tamper(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range append(append([]string{"ALTER TABLE chron_records DISABLE TRIGGER ALL"}, stmts...),
			"ALTER TABLE chron_records ENABLE TRIGGER ALL") {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// swapColumns exchanges every column but seq (and id, the key) between two
// rows of stream gate-0.
const swapColumns = `UPDATE chron_records a SET
	time = b.time, kind = b.kind, actor = b.actor, agent_name = b.agent_name, agent_namespace = b.agent_namespace,
	agent_uid = b.agent_uid, org = b.org, action = b.action, context = b.context, outcome = b.outcome,
	reason = b.reason, message = b.message, anchor = b.anchor, skill_version_id = b.skill_version_id,
	skill_digest = b.skill_digest, policies = b.policies, skill_rules = b.skill_rules, replica = b.replica,
	request_id = b.request_id, prev_hash = b.prev_hash, hash = b.hash
	FROM chron_records b
	WHERE a.stream = 'gate-0' AND b.stream = 'gate-0' AND ((a.seq = 3 AND b.seq = 4) OR (a.seq = 4 AND b.seq = 3))`

func TestVerify(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, pool *pgxpool.Pool)
		seq     int64 // 0: no problem expected
		idOfSeq int64 // the row named is the one stored under this seq before tampering
		what    string
	}{
		{name: "clean"},
		{name: "outcome edited", seq: 3, idOfSeq: 3, what: "row changed: hash does not match its contents",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, "UPDATE chron_records SET outcome = 'ALLOW' WHERE stream = 'gate-0' AND seq = 3")
			}},
		{name: "context edited", seq: 2, idOfSeq: 2, what: "row changed",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, `UPDATE chron_records SET context = context || '{"target":"staging"}' WHERE stream = 'gate-0' AND seq = 2`)
			}},
		{name: "policy key respelled", seq: 5, idOfSeq: 5, what: "row changed",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, `UPDATE chron_records SET policies = replace(policies::text, '"name"', '"NAME"')::jsonb WHERE stream = 'gate-0' AND seq = 5`)
			}},
		{name: "column nulled", seq: 4, idOfSeq: 4, what: "row changed: a column is NULL",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, "ALTER TABLE chron_records ALTER COLUMN message DROP NOT NULL",
					"UPDATE chron_records SET message = NULL WHERE stream = 'gate-0' AND seq = 4")
			}},
		{name: "middle row deleted", seq: 4, idOfSeq: 4, what: "row missing: sequence jumps from 2 to 4",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, "DELETE FROM chron_records WHERE stream = 'gate-0' AND seq = 3")
			}},
		{name: "first row deleted", seq: 2, idOfSeq: 2, what: "row missing: stream starts at seq 2",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p, "DELETE FROM chron_records WHERE stream = 'gate-0' AND seq = 1")
			}},
		{name: "contents swapped", seq: 3, idOfSeq: 3, what: "row changed",
			tamper: func(t *testing.T, p *pgxpool.Pool) { tamper(t, p, swapColumns) }},
		{name: "seq swapped", seq: 3, idOfSeq: 4, what: "row changed",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				tamper(t, p,
					"UPDATE chron_records SET seq = 1000000 WHERE stream = 'gate-0' AND seq = 3",
					"UPDATE chron_records SET seq = 3 WHERE stream = 'gate-0' AND seq = 4",
					"UPDATE chron_records SET seq = 4 WHERE stream = 'gate-0' AND seq = 1000000")
			}},
		{name: "edit with its hash recomputed", seq: 4, idOfSeq: 4, what: "rows out of order: prev_hash does not match row 3",
			tamper: func(t *testing.T, p *pgxpool.Pool) {
				// The attacker knows the format and rehashes the edited row.
				ctx := context.Background()
				rows, _, err := List(ctx, p, Filter{})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					if r.Stream != "gate-0" || r.Seq != 3 {
						continue
					}
					r.Outcome = OutcomeAllow
					pr, err := prepare(&r.Record)
					if err != nil {
						t.Fatal(err)
					}
					h, _ := chainHash(nil, streamPrefix(r.Stream), r.PrevHash, r.Seq, pr.body)
					tamper(t, p, "UPDATE chron_records SET outcome = 'ALLOW', hash = '"+h+"' WHERE stream = 'gate-0' AND seq = 3")
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool, _ := newDB(t)
			ctx := context.Background()
			ids := map[int64]string{}
			// Two streams; only gate-0 is tampered with.
			for _, stream := range []string{"gate-0", "gate-1"} {
				w := newWriter(t, pool, WriterOptions{Stream: stream})
				for i := range 6 {
					row, err := w.Write(ctx, decision(i))
					if err != nil {
						t.Fatal(err)
					}
					if stream == "gate-0" {
						ids[row.Seq] = row.ID
					}
				}
			}
			if c.tamper != nil {
				c.tamper(t, pool)
			}
			rep, err := Verify(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Streams != 2 {
				t.Errorf("%d streams, want 2", rep.Streams)
			}
			if c.seq == 0 {
				if len(rep.Problems) != 0 || rep.Rows != 12 {
					t.Fatalf("clean log: %+v", rep)
				}
				return
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("want one problem, got %+v", rep.Problems)
			}
			p := rep.Problems[0]
			t.Logf("%s", p)
			if p.Stream != "gate-0" || p.Seq != c.seq || p.ID != ids[c.idOfSeq] || !strings.HasPrefix(p.What, c.what) {
				t.Errorf("got %+v, want stream gate-0 seq %d id %s: %s", p, c.seq, ids[c.idOfSeq], c.what)
			}
		})
	}
}

// TestVerifyPages walks a stream longer than one page.
func TestVerifyPages(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	w := newWriter(t, pool, WriterOptions{})
	n := verifyPage*2 + 17
	errs := make(chan error, n)
	for i := range n {
		go func() { _, err := w.Write(ctx, decision(i)); errs <- err }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tamper(t, pool, "DELETE FROM chron_records WHERE seq = 2005")
	rep, err := Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Seq != 2006 || rep.Rows != 2005 {
		t.Fatalf("%+v", rep)
	}
	// Pages are windows of seq: a hole wider than one, starting inside
	// one, is still a hole at the next stored row.
	tamper(t, pool, "DELETE FROM chron_records WHERE seq BETWEEN 100 AND 1300")
	if rep, err = Verify(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Seq != 1301 || rep.Rows != 100 {
		t.Fatalf("%+v", rep)
	}
	// A row at the top of bigint's range ends the walk with its problem,
	// rather than wrapping the next window around.
	tamper(t, pool, "DELETE FROM chron_records WHERE seq BETWEEN 100 AND 2016",
		"UPDATE chron_records SET seq = 9223372036854775807 WHERE seq = 2017")
	if rep, err = Verify(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Seq != 9223372036854775807 {
		t.Fatalf("%+v", rep)
	}
}
