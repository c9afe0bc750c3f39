package chron

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestUnnestArgsMatchCopyValues: the INSERT's arrays carry, column by
// column, what COPY sends for each row.
func TestUnnestArgsMatchCopyValues(t *testing.T) {
	var live []*pending
	for i := range 3 {
		p, err := prepare(decision(i))
		if err != nil {
			t.Fatal(err)
		}
		pd := &pending{p: p}
		pd.row = Row{Record: p.rec, Stream: "gate/0", Seq: int64(i + 1), PrevHash: fmt.Sprint("prev", i), Hash: fmt.Sprint("hash", i),
			Format: FormatV2, KeyID: "k1"}
		live = append(live, pd)
	}
	args := unnestArgs(live)
	if len(args) != len(insertColumns) {
		t.Fatalf("%d arrays for %d columns", len(args), len(insertColumns))
	}
	for i, p := range live {
		for c, want := range copyValues(&p.row, &p.p) {
			var got any
			switch a := args[c].(type) {
			case []string:
				got = a[i]
			case [][]byte:
				got = json.RawMessage(a[i])
			case []int64:
				got = a[i]
			case []int16:
				got = a[i]
			case []time.Time:
				got = a[i]
			default:
				t.Fatalf("column %s: array of %T", insertColumns[c], a)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("row %d column %s: %v, COPY sends %v", i, insertColumns[c], got, want)
			}
		}
	}
}
