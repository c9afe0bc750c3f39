package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/claiim/claiim-operator/gate/chron"
)

// TestCheckedChronWriteWithin is the gate's write path (server.TimedLog
// through checkedChron): refused with the schema's message until Chron is
// migrated, the schema check bounded by the write's own limit, then the
// row stored, all without a restart.
func TestCheckedChronWriteWithin(t *testing.T) {
	ctx, pool, _ := emptyChron(t, "claiim") // not migrated yet
	w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/test-0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	c := newCheckedChron("gate", pool, w, logr.Discard())

	rec := func() *chron.Record {
		return &chron.Record{Kind: chron.KindDecision, Actor: "agent", AgentName: "a", Action: "read", Outcome: "ALLOW", Reason: "OK"}
	}
	_, err = c.WriteWithin(ctx, rec(), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "claiim chron migrate") {
		t.Fatalf("before the migration: %v, want the schema's refusal naming `claiim chron migrate`", err)
	}
	// The check counts against the write's limit: a limit spent before it
	// ends is the deadline, not a wait for the database.
	if _, err := c.WriteWithin(ctx, rec(), time.Nanosecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with 1ns to write: %v, want context.DeadlineExceeded", err)
	}
	if err := chron.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	row, err := c.WriteWithin(ctx, rec(), 2*time.Second)
	if err != nil {
		t.Fatalf("after the migration: %v", err)
	}
	if row.Seq != 1 || row.Stream != "gate/test-0" {
		t.Fatalf("stored as %s #%d, want gate/test-0 #1", row.Stream, row.Seq)
	}
}
