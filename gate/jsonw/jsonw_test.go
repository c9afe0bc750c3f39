package jsonw

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzAppendString: any string, valid UTF-8 or not, is spelled as
// encoding/json spells it with HTML escaping on. (gate/chron's tests
// add the hand-picked nasty strings and floats.)
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "<&>", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xc3", "é🎉", `"\`, "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got[1:]) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got[1:], want)
		}
	})
}

// FuzzAppendFloat: any float64 bits, including NaN and ±Inf, which both
// refuse.
func FuzzAppendFloat(f *testing.F) {
	for _, x := range []float64{0, math.Copysign(0, -1), 1e-6, math.Nextafter(1e-6, 0), 1e21, math.Nextafter(1e21, 0),
		1e-7, 5e-324, math.MaxFloat64, math.NaN(), math.Inf(-1), 123456789.125} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		x := math.Float64frombits(bits)
		want, werr := json.Marshal(x)
		got, err := AppendFloat(nil, x)
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Fatalf("AppendFloat(%v) = %s (%v), encoding/json %s (%v)", x, got, err, want, werr)
		}
	})
}
