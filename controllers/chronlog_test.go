package controllers

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
)

// memLog keeps what a real writer would store; its ids come from a real
// chron.Writer's EventID (which never touches the database).
type memLog struct {
	ids *chron.Writer
	got []string
}

func (m *memLog) Write(_ context.Context, r *chron.Record) (chron.Row, error) {
	m.got = append(m.got, r.ID)
	return chron.Row{Record: *r}, nil
}
func (m *memLog) EventID(parts ...string) string { return m.ids.EventID(parts...) }

func writerWithKey(t *testing.T, key []byte) *chron.Writer {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // never connected
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w, err := chron.NewWriter(context.Background(), pool, chron.WriterOptions{Stream: "manager/0", IDKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// TestRecordEventIDs: an event's id is the same on every retry and after
// a restart with the same key, differs per event, is not the UUIDv5 of
// public fields that the ids used to be, and cannot be made without the
// key; a log that cannot derive keyed ids is refused.
func TestRecordEventIDs(t *testing.T) {
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	a, b := &memLog{ids: writerWithKey(t, key)}, &memLog{ids: writerWithKey(t, key)} // b: the manager restarted
	other := &memLog{ids: writerWithKey(t, []byte("another key, another cluster....."))}
	const uid = "5a1c1b2e-0000-4000-8000-000000000001"
	for _, l := range []*memLog{a, a, b, other} {
		if err := recordEvent(ctx, l, uid, "expired", &chron.Record{Kind: chron.KindPIMExpired}); err != nil {
			t.Fatal(err)
		}
	}
	if err := recordEvent(ctx, a, uid, "approved", &chron.Record{Kind: chron.KindPIMApproved}); err != nil {
		t.Fatal(err)
	}
	old := uuid.NewSHA1(uuid.MustParse("6f1c6a8e-2d0b-4b8e-9a55-0c1aa11e0001"), []byte(uid+"/expired")).String()
	switch {
	case a.got[0] != a.got[1] || a.got[0] != b.got[0]:
		t.Errorf("ids differ across retries or restarts: %v %v", a.got, b.got)
	case a.got[0] == other.got[0]:
		t.Error("another key gives the same id: it does not depend on the key")
	case a.got[0] == a.got[2]:
		t.Error("two events of one object share an id")
	case a.got[0] == old:
		t.Error("the id is still the UUIDv5 of the object's UID and the event")
	}
	var noKeys struct{ Log }
	noKeys.Log = &struct{ Log }{}
	if err := recordEvent(ctx, noKeys, uid, "expired", &chron.Record{Kind: chron.KindPIMExpired}); !errors.Is(err, errNoEventIDs) {
		t.Errorf("a log without keyed ids: %v, want errNoEventIDs", err)
	}
}
