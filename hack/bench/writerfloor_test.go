package main

import "testing"

// TestWriterFloor runs `bench writer-floor` briefly: every record answered
// as stored has its row, and chron verify passes on what it wrote (the
// command fails otherwise). Its figures are not checked here: they are the
// machine's (docs/benchmarks.md).
func TestWriterFloor(t *testing.T) {
	if err := writerFloor([]string{"-rates", "200,400", "-duration", "500ms", "-fill", "200ms", "-streams", "2"}); err != nil {
		t.Fatal(err)
	}
	if err := writerFloor([]string{"-rates", "0"}); err == nil {
		t.Fatal("a rate of 0 was taken")
	}
}
