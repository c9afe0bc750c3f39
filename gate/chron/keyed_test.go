package chron

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// keyedLog is stream gate/0 written in format v2, with a signed checkpoint
// at seq 6 and two rows after it, and stream gate/1 beside it.
type keyedLog struct {
	pool *pgxpool.Pool
	keys KeySet
	cp   SignedCheckpoint // gate/0 at seq 6
	ids  map[int64]string // gate/0's ids by seq
}

func newKeyedLog(t *testing.T) *keyedLog {
	t.Helper()
	pool, _ := newDB(t)
	keys, err := NewKeySet(ScopeGate, false)
	if err != nil {
		t.Fatal(err)
	}
	l := &keyedLog{pool: pool, keys: keys, ids: map[int64]string{}}
	ctx := context.Background()
	for _, stream := range []string{"gate/0", "gate/1"} {
		k := keys.ChainKey()
		w := newWriter(t, pool, WriterOptions{Stream: stream, Key: &k})
		for i := range 8 {
			row, err := w.Write(ctx, decision(i))
			if err != nil {
				t.Fatal(err)
			}
			if row.Format != FormatV2 || row.KeyID != k.ID {
				t.Fatalf("row %d: format %d key %q, want v2 under %s", row.Seq, row.Format, row.KeyID, k.ID)
			}
			if stream == "gate/0" {
				l.ids[row.Seq] = row.ID
				if row.Seq == 6 {
					if l.cp, err = (Checkpoint{Stream: stream, Seq: 6, Hash: row.Hash, Time: base}).Sign(keys.SigningKey()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	return l
}

// verify runs VerifyWith with the chain keys (keyed) or with the public
// keys alone.
func (l *keyedLog) verify(t *testing.T, keyed bool) VerifyReport {
	t.Helper()
	pubs := PublicKeys{}
	for _, p := range l.keys.Publics() {
		pubs[p.ID] = p
	}
	opts := VerifyOptions{Checkpoints: []SignedCheckpoint{l.cp}, PublicKeys: pubs}
	if keyed {
		opts.Keys = Keyring{}
		opts.Keys.Add(l.keys)
	}
	rep, err := VerifyWith(context.Background(), l.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rechain edits gate/0 from seq on the way an attacker with full database
// access would: edit changes a row, and every row from seq is hashed
// again with chain (the attacker's guess of the key, or format v1).
func (l *keyedLog) rechain(t *testing.T, from int64, chain chainer, edit func(*Row)) {
	t.Helper()
	ctx := context.Background()
	rows, err := l.pool.Query(ctx, "SELECT "+rowColumns+" FROM chron_records WHERE stream = 'gate/0' ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var raw rawRow
	var stored []Row
	if _, err := pgx.ForEachRow(rows, raw.dest(), func() error {
		r, err := raw.decode()
		stored = append(stored, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var stmts []string
	prev := GenesisHash
	for _, r := range stored {
		if r.Seq < from {
			prev = r.Hash
			continue
		}
		if r.Seq == from {
			edit(&r)
		}
		p, err := prepare(&r.Record)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := chain.hash(nil, prev, r.Seq, p.body)
		stmts = append(stmts, fmt.Sprintf("UPDATE chron_records SET outcome = '%s', prev_hash = '%s', hash = '%s', format = %d, key_id = '%s' "+
			"WHERE stream = 'gate/0' AND seq = %d", r.Outcome, prev, h, chain.format, chain.keyID, r.Seq))
		prev = h
	}
	tamper(t, l.pool, append([]string{"ALTER TABLE chron_records DROP CONSTRAINT chron_records_format_check"}, stmts...)...)
}

func allow(r *Row) { r.Outcome = OutcomeAllow }

// TestVerifyKeyed: every way a database superuser can change gate/0 is
// reported with its first bad row — with the chain key, and (where a
// checkpoint or the format shows it) with the public key alone; gate/1 is
// never blamed.
func TestVerifyKeyed(t *testing.T) {
	guess := ChainKey{ID: "", Scope: ScopeGate, Secret: []byte("the attacker's guess at the key..")}
	cases := []struct {
		name   string
		tamper func(t *testing.T, l *keyedLog)
		keyed  []string // want, with the chain key: "<seq> <What prefix>"; "" = clean
		public []string // want, with the public key alone
	}{
		{name: "clean", keyed: nil, public: nil},
		{name: "edited row", tamper: func(t *testing.T, l *keyedLog) {
			tamper(t, l.pool, "UPDATE chron_records SET outcome = 'ALLOW' WHERE stream = 'gate/0' AND seq = 3")
		}, keyed: []string{"3 " + WhatRowChanged}, public: nil /* the hash column was kept: only the key shows it */},
		{name: "rewritten and rechained under a guessed key", tamper: func(t *testing.T, l *keyedLog) {
			g := guess
			g.ID = l.keys.CurrentChain // the row names the real key, whose secret the attacker lacks
			l.rechain(t, 3, newChainer("gate/0", &g), allow)
		}, keyed: []string{"3 " + WhatRowChanged}, public: []string{"6 " + WhatRechained}},
		{name: "rewritten and rechained under a key of the attacker's", tamper: func(t *testing.T, l *keyedLog) {
			g := guess
			g.ID = KeyID(g.Secret)
			l.rechain(t, 3, newChainer("gate/0", &g), allow)
		}, keyed: []string{"3 " + WhatKey}, public: []string{"6 " + WhatRechained}},
		{name: "rechained in the unkeyed format", tamper: func(t *testing.T, l *keyedLog) {
			l.rechain(t, 3, newChainer("gate/0", nil), allow)
		}, keyed: []string{"3 " + WhatDowngrade}, public: []string{"3 " + WhatDowngrade}},
		{name: "rechained whole in the unkeyed format", tamper: func(t *testing.T, l *keyedLog) {
			l.rechain(t, 1, newChainer("gate/0", nil), allow)
		}, keyed: []string{"6 " + WhatRechained}, public: []string{"6 " + WhatRechained}},
		{name: "middle row deleted", tamper: func(t *testing.T, l *keyedLog) {
			tamper(t, l.pool, "DELETE FROM chron_records WHERE stream = 'gate/0' AND seq = 4")
		}, keyed: []string{"5 " + WhatRowMissing}, public: []string{"5 " + WhatRowMissing}},
		{name: "tail cut below the checkpoint", tamper: func(t *testing.T, l *keyedLog) {
			tamper(t, l.pool, "DELETE FROM chron_records WHERE stream = 'gate/0' AND seq >= 5")
		}, keyed: []string{"5 " + WhatTailCut}, public: []string{"5 " + WhatTailCut}},
		{name: "tail cut after the checkpoint: the bound, unseen", tamper: func(t *testing.T, l *keyedLog) {
			tamper(t, l.pool, "DELETE FROM chron_records WHERE stream = 'gate/0' AND seq >= 7")
		}, keyed: nil, public: nil},
		{name: "whole stream removed", tamper: func(t *testing.T, l *keyedLog) {
			tamper(t, l.pool, "DELETE FROM chron_records WHERE stream = 'gate/0'")
		}, keyed: []string{"1 " + WhatStreamRemoved}, public: []string{"1 " + WhatStreamRemoved}},
		{name: "checkpoint forged", tamper: func(t *testing.T, l *keyedLog) {
			other, err := NewKeySet(ScopeGate, false)
			if err != nil {
				t.Fatal(err)
			}
			forged, err := l.cp.Sign(other.SigningKey())
			if err != nil {
				t.Fatal(err)
			}
			forged.KeyID = l.cp.KeyID
			l.cp = forged
		}, keyed: []string{"6 " + WhatCheckpoint}, public: []string{"6 " + WhatCheckpoint}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newKeyedLog(t)
			if c.tamper != nil {
				c.tamper(t, l)
			}
			for _, keyed := range []bool{true, false} {
				want := c.public
				if keyed {
					want = c.keyed
				}
				rep := l.verify(t, keyed)
				var got []string
				for _, p := range rep.Problems {
					t.Logf("keyed=%v: %s", keyed, p)
					got = append(got, fmt.Sprintf("%d %s", p.Seq, p.What))
					if p.Stream != "gate/0" {
						t.Errorf("keyed=%v: stream %s blamed", keyed, p.Stream)
					}
					if p.Seq <= 8 && p.ID != "" && p.ID != l.ids[p.Seq] {
						t.Errorf("keyed=%v: problem names id %s, the row at seq %d was %s", keyed, p.ID, p.Seq, l.ids[p.Seq])
					}
				}
				if len(got) != len(want) || (len(want) == 1 && !strings.HasPrefix(got[0], want[0])) {
					t.Errorf("keyed=%v: problems %q, want %q", keyed, got, want)
				}
				if keyed && rep.Unkeyed != 0 {
					t.Errorf("keyed: %d rows checked without their key", rep.Unkeyed)
				}
			}
		})
	}
}

// TestKeyRotation: rows made with an old key keep verifying after the
// stream continues under a new one, as long as the old key is kept.
func TestKeyRotation(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	keys, err := NewKeySet(ScopeManager, true)
	if err != nil {
		t.Fatal(err)
	}
	old := keys.ChainKey()
	w := newWriter(t, pool, WriterOptions{Stream: "manager/0", Key: &old})
	for i := range 3 {
		if _, err := w.Write(ctx, decision(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := keys.RotateChain(); err != nil {
		t.Fatal(err)
	}
	reread, err := ParseKeySet(ScopeManager, keys.Data()) // as the Secret holds it
	if err != nil {
		t.Fatal(err)
	}
	cur := reread.ChainKey()
	w = newWriter(t, pool, WriterOptions{Stream: "manager/0", Key: &cur})
	row, err := w.Write(ctx, decision(3))
	if err != nil || row.Seq != 4 || row.KeyID == old.ID {
		t.Fatalf("after rotation: %+v, %v", row, err)
	}
	ring := Keyring{}
	ring.Add(reread)
	if rep, err := VerifyWith(ctx, pool, VerifyOptions{Keys: ring}); err != nil || len(rep.Problems) > 0 || rep.Rows != 4 {
		t.Fatalf("both keys: %+v, %v", rep, err)
	}
	delete(ring, old.ID) // the old key thrown away: its rows can no longer be vouched for
	rep, err := VerifyWith(ctx, pool, VerifyOptions{Keys: ring})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Seq != 1 || !strings.HasPrefix(rep.Problems[0].What, WhatKey) {
		t.Fatalf("old key missing: %+v, %v", rep, err)
	}
}

// TestWriterRefusesTamperedStream: a writer given its stream's checkpoint
// (a new lease holder) refuses to continue a stream cut below it, and
// continues one that matches.
func TestWriterRefusesTamperedStream(t *testing.T) {
	l := newKeyedLog(t)
	ctx := context.Background()
	k := l.keys.ChainKey()
	cp := l.cp.Checkpoint

	w := newWriter(t, l.pool, WriterOptions{Stream: "gate/0", Key: &k, Checkpoint: &cp})
	row, err := w.Write(ctx, decision(9))
	if err != nil || row.Seq != 9 {
		t.Fatalf("a stream that matches its checkpoint: %+v, %v", row, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h, ok := w.Head(); !ok || h.Seq != 9 || h.Hash != row.Hash {
		t.Fatalf("head %+v %v, want seq 9", h, ok)
	}

	tamper(t, l.pool, "DELETE FROM chron_records WHERE stream = 'gate/0' AND seq >= 4")
	var reported error
	w = newWriter(t, l.pool, WriterOptions{Stream: "gate/0", Key: &k, Checkpoint: &cp, OnTamper: func(err error) { reported = err }})
	for range 2 { // and it stays refused
		if _, err := w.Write(ctx, decision(10)); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), WhatTailCut) {
			t.Fatalf("a stream cut below its checkpoint: %v, want ErrTampered (%s)", err, WhatTailCut)
		}
	}
	if !errors.Is(reported, ErrTampered) || !errors.Is(w.Tampered(), ErrTampered) {
		t.Errorf("reported %v, Tampered %v", reported, w.Tampered())
	}
	var n int
	if err := l.pool.QueryRow(ctx, "SELECT max(seq) FROM chron_records WHERE stream = 'gate/0'").Scan(&n); err != nil || n != 3 {
		t.Errorf("head %d (%v): the refusing writer wrote", n, err)
	}
}

// TestWriterGuard: a writer whose guard fails writes nothing and says why.
func TestWriterGuard(t *testing.T) {
	pool, _ := newDB(t)
	lost := errors.New("the stream's lease is not held")
	var held atomic.Bool
	held.Store(true)
	w := newWriter(t, pool, WriterOptions{Stream: "gate/0", Guard: func() error {
		if held.Load() {
			return nil
		}
		return lost
	}})
	ctx := context.Background()
	if _, err := w.Write(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	held.Store(false)
	if _, err := w.Write(ctx, decision(2)); !errors.Is(err, lost) {
		t.Fatalf("without the lease: %v, want %v", err, lost)
	}
	if h, _ := w.Head(); h.Seq != 1 {
		t.Errorf("head %d, want 1", h.Seq)
	}
}

// TestVerifyIncremental resumes from the heads of an earlier run.
func TestVerifyIncremental(t *testing.T) {
	l := newKeyedLog(t)
	ctx := context.Background()
	ring := Keyring{}
	ring.Add(l.keys)
	first, err := VerifyWith(ctx, l.pool, VerifyOptions{Keys: ring})
	if err != nil || len(first.Problems) > 0 || first.Rows != 16 || first.Heads["gate/0"].Seq != 8 {
		t.Fatalf("%+v, %v", first, err)
	}
	k := l.keys.ChainKey()
	w := newWriter(t, l.pool, WriterOptions{Stream: "gate/0", Key: &k, MaxWait: time.Millisecond})
	if _, err := w.Write(ctx, decision(20)); err != nil {
		t.Fatal(err)
	}
	next, err := VerifyWith(ctx, l.pool, VerifyOptions{Keys: ring, From: first.Heads})
	if err != nil || len(next.Problems) > 0 || next.Rows != 1 || next.Heads["gate/0"].Seq != 9 {
		t.Fatalf("%+v, %v", next, err)
	}
}
