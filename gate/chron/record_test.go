package chron

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrepareRejects(t *testing.T) {
	for name, r := range map[string]*Record{
		"no kind":     {Outcome: OutcomeAllow},
		"bad outcome": {Kind: KindDecision, Outcome: "MAYBE"},
		"bad context": {Kind: KindDecision, Outcome: OutcomeAllow, Context: map[string]any{"c": make(chan int)}},
	} {
		if _, err := prepare(r); err == nil {
			t.Errorf("%s: prepare accepted %+v", name, r)
		}
	}
}

// A Record or Row encodes as JSON whether or not it carries a Correction.
func TestRecordJSONWithoutCorrection(t *testing.T) {
	r := Row{Record: Record{ID: "x", Correction: func(r Record) Record { return r }}}
	b, err := json.Marshal(r)
	if err != nil || strings.Contains(string(b), "Correction") {
		t.Fatalf("%s, %v", b, err)
	}
}
