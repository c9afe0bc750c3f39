package chron

import (
	"context"
	"testing"
	"time"
)

// A writer wedged on a batch is Stalled once the batch outlives three
// commit timeouts; an idle or working writer never is. The wedge is made
// by an OnCommit hook that blocks (the one callback outside code runs in
// the loop), which no commit timeout can end.
func TestWriterStalled(t *testing.T) {
	pool, _ := newDB(t)
	release := make(chan struct{})
	wedge := make(chan bool, 1)
	w := newWriter(t, pool, WriterOptions{CommitTimeout: time.Second, OnCommit: func(int, time.Duration, error) {
		select {
		case <-wedge:
			<-release
		default:
		}
	}})
	ctx := context.Background()
	if _, err := w.Write(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	if w.Stalled(time.Now().Add(time.Hour)) {
		t.Fatal("an idle writer is not stalled, however long it waits for records")
	}

	wedge <- true
	done := make(chan error, 1)
	go func() { _, err := w.Write(ctx, decision(2)); done <- err }()
	eventually(t, "the loop to take the batch", func() bool { return w.Stats().InFlight > 0 })
	if w.Stalled(time.Now()) {
		t.Fatal("a batch within its bound is not a stall")
	}
	if !w.Stalled(time.Now().Add(3*time.Second + time.Millisecond)) {
		t.Fatal("a batch past three commit timeouts must be reported stalled")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the loop to let the batch go", func() bool { return w.Stats().InFlight == 0 })
	if w.Stalled(time.Now().Add(time.Hour)) {
		t.Fatal("after the batch ends the writer is not stalled")
	}
}
