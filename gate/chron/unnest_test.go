package chron

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// readArray decodes one binary array parameter as PostgreSQL's array_recv
// reads it, failing t on anything it would refuse.
func readArray(t *testing.T, col string, b []byte) (elem uint32, items [][]byte) {
	t.Helper()
	u32 := func() uint32 {
		if len(b) < 4 {
			t.Fatalf("column %s: array cut short", col)
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v
	}
	if nd, flags := u32(), u32(); nd != 1 || flags != 0 {
		t.Fatalf("column %s: %d dimensions, flags %d", col, nd, flags)
	}
	elem = u32()
	n, lb := u32(), u32()
	if lb != 1 {
		t.Fatalf("column %s: lower bound %d", col, lb)
	}
	for range n {
		l := u32()
		if int(l) > len(b) {
			t.Fatalf("column %s: element of %d bytes, %d left", col, l, len(b))
		}
		items, b = append(items, b[:l]), b[l:]
	}
	if len(b) != 0 {
		t.Fatalf("column %s: %d bytes after the last element", col, len(b))
	}
	return elem, items
}

// TestBatchParamsMatchCopyValues: the INSERT's binary arrays carry, column
// by column, what COPY sends for each row, twice in a row (the buffer is
// reused) and for times before PostgreSQL's epoch and centuries from it.
func TestBatchParamsMatchCopyValues(t *testing.T) {
	var b batchParams
	for round, n := range []int{3, 1, 40} {
		var live []*pending
		for i := range n {
			r := decision(i + round)
			switch i {
			case 1:
				r.Time = time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)
				r.Message = "ünïcode ✓ and \"quotes\", {braces}"
			case 2: // past a time.Duration's ±292 years from PostgreSQL's epoch
				r.Time = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
			case 3:
				r.Time = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)
			}
			p, err := prepare(r)
			if err != nil {
				t.Fatal(err)
			}
			pd := &pending{p: p}
			pd.row = Row{Record: p.rec, Stream: "gate/0", Seq: int64(i + 1), PrevHash: fmt.Sprint("prev", i), Hash: fmt.Sprint("hash", i),
				Format: FormatV2, KeyID: "k1"}
			live = append(live, pd)
		}
		params := b.encode(live)
		if len(params) != len(insertColumns) {
			t.Fatalf("%d arrays for %d columns", len(params), len(insertColumns))
		}
		for c, col := range insertColumns {
			elem, items := readArray(t, col, params[c])
			if len(items) != n {
				t.Fatalf("column %s: %d elements for %d rows", col, len(items), n)
			}
			for i, p := range live {
				want := copyValues(&p.row, &p.p)[c]
				var got any
				switch elem {
				case oidText:
					got = string(items[i])
					if raw, ok := want.(json.RawMessage); ok {
						want = string(raw)
					}
				case oidInt8:
					got = int64(binary.BigEndian.Uint64(items[i]))
				case oidInt2:
					got = int16(binary.BigEndian.Uint16(items[i]))
				case oidTimestamptz:
					got = time.UnixMicro(pgEpoch + int64(binary.BigEndian.Uint64(items[i]))).UTC()
				default:
					t.Fatalf("column %s: element type %d", col, elem)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("round %d row %d column %s: %v, COPY sends %v", round, i, col, got, want)
				}
			}
		}
	}
}

// BenchmarkBatchParams is the writer goroutine's encoding of a batch of
// 32 decisions: on the commit's critical path, once per batch.
func BenchmarkBatchParams(b *testing.B) {
	live := make([]*pending, 32)
	for i := range live {
		p, err := prepare(decision(i))
		if err != nil {
			b.Fatal(err)
		}
		live[i] = &pending{p: p, row: Row{Record: p.rec, Stream: "gate/0", Seq: int64(i + 1), Format: FormatV2, KeyID: "k1"}}
	}
	var bp batchParams
	b.ReportAllocs()
	for range b.N {
		bp.encode(live)
	}
}
