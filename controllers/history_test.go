package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// memHistory is chron_history's contract in memory: one row per (uid,
// generation), the first kept. The PostgreSQL store is tested in
// gate/chron, the whole path in the admission suite.
type memHistory struct{ rows map[string]chron.Generation }

func (m *memHistory) key(uid string, gen int64) string { return uid + "/" + string(rune('0'+gen)) }

func (m *memHistory) RecordGeneration(_ context.Context, g chron.Generation) (chron.Generation, bool, error) {
	if s, ok := m.rows[m.key(g.UID, g.Generation)]; ok {
		return s, false, nil
	}
	m.rows[m.key(g.UID, g.Generation)] = g
	return g, true, nil
}

func (m *memHistory) RecordedBefore(_ context.Context, uid string, gen int64) (int64, error) {
	var prev int64
	for _, g := range m.rows {
		if g.UID == uid && g.Generation < gen {
			prev = max(prev, g.Generation)
		}
	}
	return prev, nil
}

// recLog keeps the records, deduplicated by their keyed ids as the writer does.
type recLog struct {
	memLog
	recs map[string]*chron.Record
}

func (l *recLog) Write(_ context.Context, r *chron.Record) (chron.Row, error) {
	if had, dup := l.recs[r.ID]; dup {
		if had.Message != r.Message || had.Actor != r.Actor || !reflect.DeepEqual(had.Context, r.Context) {
			return chron.Row{}, fmt.Errorf("%w: %s: %q, then %q", chron.ErrConflict, r.ID, had.Message, r.Message)
		}
		return chron.Row{Record: *had}, nil
	}
	l.recs[r.ID] = r
	return chron.Row{Record: *r}, nil
}

func (l *recLog) kinds(k chron.Kind) []*chron.Record {
	var out []*chron.Record
	for _, r := range l.recs {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}

func TestHistoryRecordsGapsAndConflicts(t *testing.T) {
	ctx := context.Background()
	store := &memHistory{rows: map[string]chron.Generation{}}
	log := &recLog{memLog: memLog{ids: writerWithKey(t, []byte("0123456789abcdef0123456789abcdef"))}, recs: map[string]*chron.Record{}}
	h := &History{Store: store, Log: log}
	pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-production-deploys", UID: "uid-1", Generation: 1,
		Annotations: map[string]string{claiimv1.AnnotationChangedBy: claiimv1.ChangedBy{User: "admin@claiim.io", PIMSession: "pim-1"}.String()}},
		Spec: claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}

	for range 2 { // a retry records nothing new
		if err := h.record(ctx, pol, true); err != nil {
			t.Fatal(err)
		}
	}
	// As after a restart, seeing the same generation now changed past
	// admission (an annotation edited behind the webhooks): the stored
	// row and its Chron row stand, re-derived without a conflict.
	h.done = nil
	if err := h.record(ctx, pol, false); err != nil {
		t.Fatal(err)
	}
	if len(store.rows) != 1 || len(log.kinds(chron.KindObjectChanged)) != 1 || len(log.kinds(chron.KindObjectGap)) != 0 {
		t.Fatalf("generation 1 thrice: %d history rows, %d Chron rows", len(store.rows), len(log.recs))
	}
	if g := store.rows[store.key("uid-1", 1)]; g.ChangedBy != "admin@claiim.io" || g.PIMSession != "pim-1" {
		t.Errorf("generation 1: changed by %q under %q", g.ChangedBy, g.PIMSession)
	}

	// Generations 2 and 3 came and went unseen; 4, changed past admission,
	// names nobody even though its annotation does.
	pol.Generation = 4
	if err := h.record(ctx, pol, false); err != nil {
		t.Fatal(err)
	}
	gaps := log.kinds(chron.KindObjectGap)
	if len(gaps) != 1 || gaps[0].Context["missed_from"] != int64(2) || gaps[0].Context["missed_to"] != int64(3) ||
		!strings.Contains(gaps[0].Message, "generations 2 to 3") {
		t.Fatalf("gap rows: %+v", gaps)
	}
	if g := store.rows[store.key("uid-1", 4)]; g.Admitted || g.ChangedBy != "" || g.PIMSession != "" {
		t.Errorf("a generation changed past admission: %+v", g)
	}

	// Other content stored under generation 5: reported, never overwritten.
	pol.Generation = 5
	forged, err := chron.NewGeneration("Policy", "uid-1", "", pol.Name, 5, map[string]any{"rules": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	store.rows[store.key("uid-1", 5)] = forged
	if err := h.record(ctx, pol, true); err != nil {
		t.Fatal(err)
	}
	conflicts := log.kinds(chron.KindConflict)
	if len(conflicts) != 1 || conflicts[0].Reason != "HISTORY_CONFLICT" || conflicts[0].Context["stored_digest"] != forged.Digest {
		t.Fatalf("conflict rows: %+v", conflicts)
	}
	if store.rows[store.key("uid-1", 5)].Digest != forged.Digest {
		t.Error("the stored row was overwritten")
	}
	if n := len(log.kinds(chron.KindObjectChanged)); n != 2 {
		t.Errorf("%d object.changed rows, want 2 (generations 1 and 4; not the conflicting 5)", n)
	}
}
