package chron

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// recordPrune writes p's signed record as the prune command does: a row
// of kind chron.pruned in a manager stream.
func recordPrune(t *testing.T, pool *pgxpool.Pool, mgr KeySet, prunes ...SignedPrune) {
	t.Helper()
	ck := mgr.ChainKey()
	w := newWriter(t, pool, WriterOptions{Stream: "manager/prune", Key: &ck})
	for _, p := range prunes {
		rec := p.Record()
		if _, err := w.Write(context.Background(), &rec); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyTellsPruningFromTruncation: rows removed below a signed prune
// record verify (the rest of the stream chained on the record's hash, a
// checkpoint in the pruned rows checked against it); rows removed without
// one, or with a record that is forged, stale or of another hash, do not.
func TestVerifyTellsPruningFromTruncation(t *testing.T) {
	ctx := context.Background()
	mgr, err := NewKeySet(ScopeManager, true)
	if err != nil {
		t.Fatal(err)
	}
	forger, _ := NewKeySet(ScopeGate, false)
	cases := []struct {
		name    string
		through int64 // rows of gate/0 deleted: 1 to through
		prune   func(rows []Row, gate KeySet) (SignedPrune, error)
		pubs    bool
		seq     int64 // the problem's seq; 0: none
		what    string
	}{
		{name: "pruned", through: 3, pubs: true, prune: func(rows []Row, gate KeySet) (SignedPrune, error) {
			return Prune{Stream: "gate/0", Through: 3, Hash: rows[2].Hash, Export: "e0", Time: base}.Sign(gate.SigningKey())
		}},
		{name: "pruned, signature unchecked", through: 3, prune: func(rows []Row, gate KeySet) (SignedPrune, error) {
			return Prune{Stream: "gate/0", Through: 3, Hash: rows[2].Hash, Export: "e0", Time: base}.Sign(gate.SigningKey())
		}},
		{name: "truncated", through: 3, pubs: true, seq: 4,
			what: "row missing: stream starts at seq 4, and no signed prune record covers seq 1 to 3 (truncated, not pruned)"},
		{name: "more cut than the record says", through: 4, pubs: true, seq: 5, what: "row missing: stream starts at seq 5",
			prune: func(rows []Row, gate KeySet) (SignedPrune, error) {
				return Prune{Stream: "gate/0", Through: 3, Hash: rows[2].Hash, Export: "e0", Time: base}.Sign(gate.SigningKey())
			}},
		{name: "forged record", through: 3, pubs: true, seq: 4, what: WhatPruneInvalid + ": the record of seq 1 to 3 being pruned signed with key",
			prune: func(rows []Row, _ KeySet) (SignedPrune, error) {
				return Prune{Stream: "gate/0", Through: 3, Hash: rows[2].Hash, Export: "e0", Time: base}.Sign(forger.SigningKey())
			}},
		{name: "record of another hash", through: 3, pubs: true, seq: 4,
			what: WhatOutOfOrder + ": prev_hash is not the hash of row 3 it is anchored on",
			prune: func(rows []Row, gate KeySet) (SignedPrune, error) {
				return Prune{Stream: "gate/0", Through: 3, Hash: rows[1].Hash, Export: "e0", Time: base}.Sign(gate.SigningKey())
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool, gate, rows := exportFixture(t, 6)
			// A checkpoint inside the pruned rows, and one at the head.
			var cps []SignedCheckpoint
			for _, seq := range []int64{2, 6} {
				cp, err := Checkpoint{Stream: "gate/0", Seq: seq, Hash: rows[seq-1].Hash, Time: base}.Sign(gate.SigningKey())
				if err != nil {
					t.Fatal(err)
				}
				cps = append(cps, cp)
			}
			if c.prune != nil {
				p, err := c.prune(rows, gate)
				if err != nil {
					t.Fatal(err)
				}
				recordPrune(t, pool, mgr, p)
			}
			tamper(t, pool, "DELETE FROM chron_records WHERE stream = 'gate/0' AND seq <= "+strconv.FormatInt(c.through, 10))
			opts := VerifyOptions{Keys: keyring(gate, mgr)}
			if c.pubs {
				opts.PublicKeys, opts.Checkpoints = publics(gate, mgr), cps[:1]
			}
			rep, err := VerifyWith(ctx, pool, opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.seq == 0 {
				if len(rep.Problems) != 0 || rep.Pruned != 1 || rep.Rows != int64(6-c.through+3+1) {
					t.Fatalf("a pruned stream: %+v", rep)
				}
				if c.pubs != (rep.PrunesUnsigned == 0) || c.pubs != (rep.Checkpoints == 1) {
					t.Fatalf("signatures checked: %+v", rep)
				}
				return
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("want one problem, got %+v", rep.Problems)
			}
			p := rep.Problems[0]
			t.Log(p)
			if p.Stream != "gate/0" || p.Seq != c.seq || !strings.HasPrefix(p.What, c.what) {
				t.Fatalf("got %s, want seq %d: %s", p, c.seq, c.what)
			}
		})
	}
}

// TestPruneRecordRoundTrip: a record survives its row (context masking,
// canonical JSON) and its signature still verifies; a checkpoint's
// signature is not a prune record's.
func TestPruneRecordRoundTrip(t *testing.T) {
	gate, _ := NewKeySet(ScopeGate, false)
	sp, err := Prune{Stream: "gate/3", Through: 1 << 40, Hash: GenesisHash, Export: strings.Repeat("ab", 32), Time: base}.Sign(gate.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	rec := sp.Record()
	p, err := prepare(&rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := pruneFromContext(string(p.ctxJSON))
	if err != nil || back != sp {
		t.Fatalf("read back %+v (%v), want %+v", back, err, sp)
	}
	if err := back.Verify(publics(gate)); err != nil {
		t.Fatal(err)
	}
	cp, _ := Checkpoint{Stream: "gate/3", Seq: 1 << 40, Hash: GenesisHash, Time: base}.Sign(gate.SigningKey())
	back.Sig = cp.Sig
	if err := back.Verify(publics(gate)); err == nil {
		t.Fatal("a checkpoint's signature verified as a prune record's")
	}
	mgr, _ := NewKeySet(ScopeManager, false)
	if _, err := (Prune{Stream: "gate/3", Through: 1, Hash: GenesisHash, Time: base}).Sign(mgr.SigningKey()); err == nil {
		t.Fatal("a manager key signed a prune record of a gate stream")
	}
}
