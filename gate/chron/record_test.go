package chron

import (
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
