package load

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	got := Format(Result{PerSecond: 12345, P50: 1200 * time.Microsecond, P99: 3400 * time.Microsecond, P999: 420 * time.Microsecond, Max: 1500 * time.Millisecond})
	want := "12345 req/s  p50 1.20ms  p99 3.40ms  p99.9 420µs  max 1.50s  errors 0"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
