package server

import (
	"errors"
	"testing"

	"github.com/claiim/claiim-operator/gate/decide"
)

type readySnaps struct{ snap *decide.Snapshot }

func (r readySnaps) Snapshot() *decide.Snapshot { return r.snap }
func (r readySnaps) Ready() error               { return nil }

// TestRequire: a failing requirement hides the snapshot (decisions are
// NOT_READY) and is the reason readiness gives; once it passes, the
// snapshot is served again.
func TestRequire(t *testing.T) {
	snap := &decide.Snapshot{}
	why := errors.New("no Chron checkpoint published for 25s")
	s := Require(readySnaps{snap}, func() error { return why })
	if s.Snapshot() != nil || !errors.Is(s.Ready(), why) || notReady(s) != why.Error() {
		t.Fatalf("failing requirement: snapshot %v, ready %v", s.Snapshot(), s.Ready())
	}
	why = nil
	if s.Snapshot() != snap || s.Ready() != nil {
		t.Fatalf("passing requirement: snapshot %v, ready %v", s.Snapshot(), s.Ready())
	}
}
