package chron

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func policyGeneration(t *testing.T, uid string, gen int64, effect string) Generation {
	t.Helper()
	spec := map[string]any{"org": "engineering", "rules": []any{map[string]any{"name": "prod", "effect": effect, "actions": []string{"deploy:production"}}}}
	g, err := NewGeneration("Policy", uid, "", "no-production-deploys", gen, spec)
	if err != nil {
		t.Fatal(err)
	}
	g.ChangedBy, g.PIMSession, g.Admitted = "admin@claiim.io", "admin-prod-change", true
	return g
}

// TestHistoryIdempotentAndAppendOnly: a generation is stored once (a
// second record returns the first, content and time), its content reads
// back as it was hashed, and nobody changes it, the owner included.
func TestHistoryIdempotentAndAppendOnly(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	mgr, reader := d.as(t, d.manager.Name), d.as(t, d.reader.Name)

	g1 := policyGeneration(t, "uid-1", 1, "Allow")
	stored, inserted, err := RecordGeneration(ctx, mgr, g1)
	if err != nil || !inserted || stored.RecordedAt.IsZero() {
		t.Fatalf("first record: %+v, inserted %v, %v", stored, inserted, err)
	}
	again, inserted, err := RecordGeneration(ctx, mgr, g1)
	if err != nil || inserted || !again.RecordedAt.Equal(stored.RecordedAt) || again.Digest != g1.Digest {
		t.Fatalf("second record of the same generation: %+v, inserted %v, %v", again, inserted, err)
	}
	// Other content under the same key: nothing stored, the first returned.
	other := policyGeneration(t, "uid-1", 1, "Deny")
	got, inserted, err := RecordGeneration(ctx, mgr, other)
	if err != nil || inserted || got.Digest != g1.Digest || got.Digest == other.Digest {
		t.Fatalf("other content under a stored key: %+v, inserted %v, %v", got, inserted, err)
	}
	if _, _, err := RecordGeneration(ctx, mgr, policyGeneration(t, "uid-1", 3, "Deny")); err != nil {
		t.Fatal(err)
	}

	if prev, err := RecordedBefore(ctx, mgr, "uid-1", 3); err != nil || prev != 1 {
		t.Errorf("recorded before 3: %d, %v; want 1", prev, err)
	}
	if prev, err := RecordedBefore(ctx, mgr, "uid-2", 5); err != nil || prev != 0 {
		t.Errorf("recorded before 5 of an unknown object: %d, %v; want 0", prev, err)
	}
	list, err := ListHistory(ctx, reader, HistoryQuery{Kind: "Policy", Name: "no-production-deploys"})
	if err != nil || len(list) != 2 || list[0].Generation != 1 || list[1].Generation != 3 {
		t.Fatalf("history as the reader: %+v, %v", list, err)
	}
	if string(list[0].Spec) != string(g1.Spec) || SpecDigest(list[0].Spec) != g1.Digest ||
		list[0].ChangedBy != "admin@claiim.io" || list[0].PIMSession != "admin-prod-change" || !list[0].Admitted {
		t.Errorf("generation 1 read back: %+v, want %+v", list[0], g1)
	}
	one, err := ListHistory(ctx, reader, HistoryQuery{Kind: "Policy", Name: "no-production-deploys", Generation: 3})
	if err != nil || len(one) != 1 || !strings.Contains(string(one[0].Spec), `"Deny"`) {
		t.Errorf("generation 3: %+v, %v", one, err)
	}

	for _, stmt := range []string{
		"UPDATE chron_history SET changed_by = 'mallory'",
		"DELETE FROM chron_history",
		"TRUNCATE chron_history",
	} {
		if _, err := d.owner.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "Chron is append-only") {
			t.Errorf("owner: %s: got %v, want the append-only refusal", stmt, err)
		}
		for _, role := range []string{d.manager.Name, d.reader.Name, d.gate.Name} {
			_, err := d.as(t, role).Exec(ctx, stmt)
			wantDenied(t, role, stmt, err)
		}
	}
	// The reader and the gate record nothing; the manager cannot back-date.
	for _, role := range []string{d.reader.Name, d.gate.Name} {
		_, _, err := RecordGeneration(ctx, d.as(t, role), policyGeneration(t, "uid-9", 1, "Allow"))
		wantDenied(t, role, "RecordGeneration", errors.Unwrap(err))
	}
	_, err = mgr.Exec(ctx, `INSERT INTO chron_history (uid, generation, kind, name, spec_digest, spec, admitted, recorded_at)
		VALUES ('uid-8', 1, 'Policy', 'p', $1, '{}', true, '2001-01-01')`, SpecDigest([]byte("{}")))
	wantDenied(t, d.manager.Name, "INSERT with recorded_at", err)
	_, err = d.as(t, d.gate.Name).Exec(ctx, "SELECT * FROM chron_history")
	wantDenied(t, d.gate.Name, "SELECT", err)
}

// TestHistoryRefusesInvalid: what the table would not hold is refused
// before it is sent, in words.
func TestHistoryRefusesInvalid(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	good := policyGeneration(t, "uid-1", 1, "Allow")
	for name, edit := range map[string]func(*Generation){
		"kind":       func(g *Generation) { g.Kind = "PIMRequest" },
		"generation": func(g *Generation) { g.Generation = 0 },
		"digest":     func(g *Generation) { g.Digest = SpecDigest([]byte("{}")) },
		"name":       func(g *Generation) { g.Name = strings.Repeat("n", 254) },
		"uid":        func(g *Generation) { g.UID = "" },
	} {
		g := good
		edit(&g)
		if _, _, err := RecordGeneration(ctx, pool, g); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
