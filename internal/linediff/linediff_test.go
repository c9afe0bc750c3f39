package linediff

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	render := func(ls []Line) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(l.Mark + l.Text + "\n")
		}
		return b.String()
	}
	for _, tc := range []struct{ a, b, want string }{
		{"", "", ""},
		{"x\n", "x\n", " x\n"},
		{"", "a\nb\n", "+a\n+b\n"},
		{"a\nb\n", "", "-a\n-b\n"},
		{"a\nb\nc\n", "a\nc\n", " a\n-b\n c\n"},
		{"a\nc\n", "a\nb\nc\n", " a\n+b\n c\n"},
		{"a\nb\nc\nd\n", "a\nx\nc\ny\n", " a\n-b\n+x\n c\n-d\n+y\n"},
		{"version: 1\nallowedActions:\n- deploy:staging\n", "version: 2\nallowedActions:\n- deploy:staging\n- deploy:qa\n",
			"-version: 1\n+version: 2\n allowedActions:\n - deploy:staging\n+- deploy:qa\n"},
	} {
		if got := render(Diff(tc.a, tc.b)); got != tc.want {
			t.Errorf("Diff(%q, %q) =\n%s\nwant\n%s", tc.a, tc.b, got, tc.want)
		}
	}
}

// Past the table's bound the diff is still correct: every old line
// deleted, every new one added, the common head and tail kept.
func TestDiffPastTheBound(t *testing.T) {
	var a, b strings.Builder
	a.WriteString("head\n")
	b.WriteString("head\n")
	for i := range 1100 {
		a.WriteString("a" + strings.Repeat("x", i%7) + "\n")
		b.WriteString("b" + strings.Repeat("y", i%5) + "\n")
	}
	got := Diff(a.String(), b.String())
	if len(got) != 1+2200 || got[0].Class != "same" || got[1].Class != "del" || got[len(got)-1].Class != "add" {
		t.Fatalf("%d lines, first %v, last %v", len(got), got[0], got[len(got)-1])
	}
}

// WriteUnified writes what diff -u writes for the same two texts.
func TestWriteUnified(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"
	b := "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n"
	var out strings.Builder
	if err := WriteUnified(&out, "a", "b", Diff(a, b), 2); err != nil {
		t.Fatal(err)
	}
	want := "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n 2\n-3\n+three\n 4\n 5\n@@ -11,2 +11,3 @@\n 11\n 12\n+13\n"
	if out.String() != want {
		t.Errorf("unified:\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := WriteUnified(&out, "a", "b", Diff("", "x\n"), 3); err != nil || out.String() != "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n" {
		t.Errorf("from nothing: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := WriteUnified(&out, "a", "b", Diff(a, a), 3); err != nil || out.String() != "" {
		t.Errorf("no change: %q, %v", out.String(), err)
	}
}
