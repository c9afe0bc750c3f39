package chron

import (
	"encoding/json"
	"testing"
)

// gateRecord is a decision as the gate records it: its context decoded
// from the request's JSON (numbers float64), one policy match, one rule.
func gateRecord(b *testing.B) *Record {
	r := decision(1)
	r.ID, r.Context = NewID(), nil
	if err := json.Unmarshal([]byte(`{"target":"prod-eu-1","replicas":3,"image":"registry.example/app:1.4.2",
		"labels":{"team":"payments","tier":"critical"},"api_key":"sk-live-123","regions":["eu-1","eu-2"]}`), &r.Context); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkPrepare is the Chron encoding of one decision in the request's
// goroutine: mask and bound the context, the JSON columns, the hashed body.
func BenchmarkPrepare(b *testing.B) {
	r := gateRecord(b)
	b.ReportAllocs()
	for range b.N {
		if _, err := prepare(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkContentBody is the hashed body alone, from canonical columns.
func BenchmarkContentBody(b *testing.B) {
	r := gateRecord(b)
	p, err := prepare(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		if _, err := contentBody(&p.rec, p.ctxJSON, p.polJSON, p.rulesJSON); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoundContext is the context's mask, bound and canonical JSON.
func BenchmarkBoundContext(b *testing.B) {
	r := gateRecord(b)
	b.ReportAllocs()
	for range b.N {
		if _, _, err := boundContext(r.Context); err != nil {
			b.Fatal(err)
		}
	}
}
