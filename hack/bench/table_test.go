package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPeaks: a target's peak is its best point at any connection count,
// and the gate's ratio compares peaks, not points at equal connections.
func TestPeaks(t *testing.T) {
	r := sizeResult{Placement: "unpinned", Size: "small", Points: []point{
		{Target: tNoop, Conns: 64, Rate: 60000},
		{Target: tNoop, Conns: 512, Rate: 50000},
		{Target: tOPAPlain, Conns: 64, Rate: 20000},
		{Target: tOPAPlain, Conns: 512, Rate: 19000},
		{Target: tGate, Conns: 64, Rate: 16000},
		{Target: tGate, Conns: 512, Rate: 25000},
	}}
	got := peaks(r)
	want := []peak{{Target: tNoop, Conns: 64, Rate: 60000}, {Target: tOPAPlain, Conns: 64, Rate: 20000}, {Target: tGate, Conns: 512, Rate: 25000}}
	if len(got) != len(want) {
		t.Fatalf("peaks %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Target != want[i].Target || got[i].Conns != want[i].Conns || got[i].Rate != want[i].Rate {
			t.Errorf("peak %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	var out bytes.Buffer
	printPeaks(&out, []sizeResult{r}, "unpinned")
	for _, line := range []string{"no-op (ceiling)  60000  64  0.42×", "OPA, plain Rego  20000  64  1.25×", "gate + Chron (durable)  25000  512  -"} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(line), " ")) {
			t.Errorf("the table lacks %q:\n%s", line, out.String())
		}
	}
}
