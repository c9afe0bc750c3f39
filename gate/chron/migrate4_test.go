package chron

import (
	"context"
	"slices"
	"testing"
)

// TestMigrateCommitOrder: a log written at schema version 3, in both hash
// formats and as the writer roles would, migrates to commit order. The old
// rows keep verifying, list in (stream, seq) order before every later row,
// and the writers continue their chains.
func TestMigrateCommitOrder(t *testing.T) {
	s := server(t)
	ctx := context.Background()
	url, err := s.CreateDatabase(ctx, "chron_"+randomSuffix())
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, url, nil)
	if err := migrateTo(ctx, pool, 3); err != nil {
		t.Fatal(err)
	}
	if v, err := SchemaVersion(ctx, pool); err != nil || v != 3 {
		t.Fatalf("schema version %d, %v; want 3", v, err)
	}
	keys, err := NewKeySet(ScopeGate, false)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.ChainKey()
	v1 := newWriter(t, pool, WriterOptions{Stream: "gate/1"})
	v2 := newWriter(t, pool, WriterOptions{Stream: "gate/0", Key: &k})
	write := func(w *Writer, n int) {
		for i := range n {
			if _, err := w.Write(ctx, decision(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(v1, 3)
	write(v2, 4)
	write(v1, 2)

	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if v, err := SchemaVersion(ctx, pool); err != nil || v != RequiredVersion() || v < 4 {
		t.Fatalf("schema version %d, %v; want %d", v, err, RequiredVersion())
	}
	var txids int
	if err := pool.QueryRow(ctx, "SELECT count(DISTINCT txid) FROM chron_records").Scan(&txids); err != nil || txids != 1 {
		t.Errorf("rows from before the migration have %d txids (%v), want the migration's one", txids, err)
	}
	write(v1, 2) // the same writers, across the migration
	write(v2, 2)

	var got []string
	f := Filter{OldestFirst: true, Limit: 4}
	for {
		p, err := ListPage(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rows {
			got = append(got, r.Stream+"#"+string(rune('0'+r.Seq)))
		}
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	want := []string{"gate/0#1", "gate/0#2", "gate/0#3", "gate/0#4", "gate/1#1", "gate/1#2", "gate/1#3", "gate/1#4", "gate/1#5",
		"gate/1#6", "gate/1#7", "gate/0#5", "gate/0#6"}
	if !slices.Equal(got, want) {
		t.Errorf("commit order after the migration:\n got %v\nwant %v", got, want)
	}
	rep, err := VerifyWith(ctx, pool, VerifyOptions{Keys: Keyring{k.ID: k}})
	if err != nil || len(rep.Problems) > 0 || rep.Rows != 13 || rep.Unkeyed != 0 {
		t.Errorf("verify after the migration: %+v, %v", rep, err)
	}
}
