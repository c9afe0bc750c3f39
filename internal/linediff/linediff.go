// Package linediff is the one line diff of CLAIIM: the console's skill
// version diff and `claiim history --diff` both use it.
package linediff

import (
	"fmt"
	"io"
	"strings"
)

// Line is one line of a line diff: kept, added or deleted.
type Line struct {
	// Class is "same", "add" or "del"; Mark is " ", "+" or "-".
	Class, Mark, Text string
}

// maxDiffCells bounds the LCS table (lines of a × lines of b, after the
// common head and tail are set aside). A skill version is bounded (a
// 32 KiB prompt, 256 actions), but a prompt of one-character lines would
// still make a large table; past the bound the middle is shown as all
// deleted then all added, which is a correct if not minimal diff.
const maxDiffCells = 1 << 20

// Diff is a minimal line diff of a and b (longest common subsequence),
// in order.
func Diff(a, b string) []Line {
	x, y := splitLines(a), splitLines(b)
	var out []Line
	head := 0
	for head < len(x) && head < len(y) && x[head] == y[head] {
		out = append(out, Line{"same", " ", x[head]})
		head++
	}
	tail := 0
	for tail < len(x)-head && tail < len(y)-head && x[len(x)-1-tail] == y[len(y)-1-tail] {
		tail++
	}
	out = append(out, middleDiff(x[head:len(x)-tail], y[head:len(y)-tail])...)
	for _, l := range x[len(x)-tail:] {
		out = append(out, Line{"same", " ", l})
	}
	return out
}

func middleDiff(x, y []string) []Line {
	n, m := len(x), len(y)
	out := make([]Line, 0, n+m)
	if n*m > maxDiffCells {
		for _, l := range x {
			out = append(out, Line{"del", "-", l})
		}
		for _, l := range y {
			out = append(out, Line{"add", "+", l})
		}
		return out
	}
	// lcs[i][j] is the LCS length of x[i:] and y[j:], in one slice.
	lcs := make([]int32, (n+1)*(m+1))
	at := func(i, j int) int32 { return lcs[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			v := max(at(i+1, j), at(i, j+1))
			if x[i] == y[j] {
				v = at(i+1, j+1) + 1
			}
			lcs[i*(m+1)+j] = v
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case x[i] == y[j]:
			out = append(out, Line{"same", " ", x[i]})
			i, j = i+1, j+1
		case at(i+1, j) >= at(i, j+1):
			out = append(out, Line{"del", "-", x[i]})
			i++
		default:
			out = append(out, Line{"add", "+", y[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, Line{"del", "-", x[i]})
	}
	for ; j < m; j++ {
		out = append(out, Line{"add", "+", y[j]})
	}
	return out
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Changes counts the added and deleted lines of a diff.
func Changes(lines []Line) (added, deleted int) {
	for _, l := range lines {
		switch l.Class {
		case "add":
			added++
		case "del":
			deleted++
		}
	}
	return added, deleted
}

// WriteUnified writes lines as a unified diff (diff -u): the two names,
// then hunks of the changed lines with up to context kept lines around
// each. Nothing is written when nothing changed.
func WriteUnified(w io.Writer, fromName, toName string, lines []Line, context int) error {
	if a, d := Changes(lines); a+d == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "--- %s\n+++ %s\n", fromName, toName); err != nil {
		return err
	}
	// keep[i]: line i is in a hunk (changed, or within context of a change).
	keep := make([]bool, len(lines))
	for i, l := range lines {
		if l.Class == "same" {
			continue
		}
		for j := max(0, i-context); j <= min(len(lines)-1, i+context); j++ {
			keep[j] = true
		}
	}
	fromLine, toLine := 1, 1 // numbers of the next line of each side
	for i := 0; i < len(lines); {
		if !keep[i] {
			fromLine, toLine = fromLine+1, toLine+1 // only kept lines are outside hunks
			i++
			continue
		}
		end := i
		for end < len(lines) && keep[end] {
			end++
		}
		var fromN, toN int
		for _, l := range lines[i:end] {
			if l.Class != "add" {
				fromN++
			}
			if l.Class != "del" {
				toN++
			}
		}
		if _, err := fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(fromLine, fromN), hunkRange(toLine, toN)); err != nil {
			return err
		}
		for _, l := range lines[i:end] {
			if _, err := fmt.Fprintf(w, "%s%s\n", l.Mark, l.Text); err != nil {
				return err
			}
		}
		fromLine, toLine, i = fromLine+fromN, toLine+toN, end
	}
	return nil
}

// hunkRange is a hunk header's "start,count"; an empty side starts at the
// line before it, as diff -u writes it.
func hunkRange(start, n int) string {
	if n == 0 {
		start--
	}
	return fmt.Sprintf("%d,%d", start, n)
}
