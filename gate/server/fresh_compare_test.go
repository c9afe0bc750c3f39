package server

import (
	"strings"
	"testing"
	"time"
)

func TestBehind(t *testing.T) {
	live := listing{rv: "100", items: map[string]version{
		"ns/a": {uid: "A", rv: "90"},
		"b":    {uid: "B", rv: "50"},
	}}
	cases := []struct {
		name string
		have map[string]version
		want string // "" for caught up, else a word the answer names
	}{
		{"the same objects at the same versions", map[string]version{"ns/a": {"A", "90"}, "b": {"B", "50"}}, ""},
		{"an object changed after the list", map[string]version{"ns/a": {"A", "120"}, "b": {"B", "50"}}, ""},
		{"an object created after the list", map[string]version{"ns/a": {"A", "90"}, "b": {"B", "50"}, "c": {"C", "101"}}, ""},
		{"recreated after the list", map[string]version{"ns/a": {"A2", "101"}, "b": {"B", "50"}}, ""},
		{"numbers, not strings: 100 is after 90", map[string]version{"ns/a": {"A", "100"}, "b": {"B", "50"}}, ""},
		{"an object at an older version", map[string]version{"ns/a": {"A", "89"}, "b": {"B", "50"}}, "ns/a is at resourceVersion 89, the apiserver has 90"},
		{"an object the cache has not seen", map[string]version{"ns/a": {"A", "90"}}, "b is missing"},
		{"an object deleted before the list", map[string]version{"ns/a": {"A", "90"}, "b": {"B", "50"}, "gone": {"G", "70"}}, "gone was deleted"},
		{"an object deleted and created again before the list", map[string]version{"ns/a": {"A0", "80"}, "b": {"B", "50"}}, "ns/a was deleted and created again"},
		{"an empty cache of a non-empty kind", nil, "is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := behind(live, c.have)
			if (got == "") != (c.want == "") || !strings.Contains(got, c.want) {
				t.Fatalf("behind() = %q, want %q", got, c.want)
			}
		})
	}

	t.Run("resourceVersions that are not numbers only match themselves", func(t *testing.T) {
		opaque := listing{rv: "x9", items: map[string]version{"a": {"A", "x1"}}}
		if got := behind(opaque, map[string]version{"a": {"A", "x1"}}); got != "" {
			t.Fatalf("equal opaque versions: %q", got)
		}
		if got := behind(opaque, map[string]version{"a": {"A", "x2"}}); got == "" {
			t.Fatal("a different opaque version passed as caught up")
		}
		if got := behind(opaque, map[string]version{"a": {"A", "x1"}, "b": {"B", "x10"}}); got == "" {
			t.Fatal("an object the list lacks passed, though it cannot be shown newer")
		}
	})
	t.Run("an empty kind is caught up by an empty cache", func(t *testing.T) {
		if got := behind(listing{rv: "5", items: map[string]version{}}, nil); got != "" {
			t.Fatal(got)
		}
	})
}

// A snapshot is served only within StaleAfter of its least recently
// proven kind, and a newer snapshot keeps an older one's proof.
func TestServedFreshness(t *testing.T) {
	s := &Source{StaleAfter: 10e9}
	v := &served{}
	now := int64(100e9)
	if s.fresh(unix(now), v) {
		t.Fatal("a snapshot never proven was served")
	}
	for k := range numKinds {
		v.confirm(k, now-5e9)
	}
	v.confirm(kindAgent, now-11e9) // older proof never replaces a newer one
	if !s.fresh(unix(now), v) {
		t.Fatal("a snapshot proven 5s ago was not served")
	}
	if s.fresh(unix(now+6e9), v) {
		t.Fatal("a snapshot proven 11s ago was served")
	}
	next := &served{}
	next.inherit(v)
	v.confirm(kindPolicy, now)
	if k, at := next.oldest(); at != now-5e9 {
		t.Fatalf("inherited proof: kind %d at %d", k, at)
	}
	if k, _ := (&served{}).oldest(); k != 0 {
		t.Fatalf("oldest of nothing proven: kind %d", k)
	}
}

func unix(nanos int64) time.Time { return time.Unix(0, nanos) }
