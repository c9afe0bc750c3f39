package console

import "strings"

// diffLine is one line of a line diff: kept, added or deleted.
type diffLine struct {
	// Class is "same", "add" or "del"; Mark is " ", "+" or "-".
	Class, Mark, Text string
}

// maxDiffCells bounds the LCS table (lines of a × lines of b, after the
// common head and tail are set aside). A skill version is bounded (a
// 32 KiB prompt, 256 actions), but a prompt of one-character lines would
// still make a large table; past the bound the middle is shown as all
// deleted then all added, which is a correct if not minimal diff.
const maxDiffCells = 1 << 20

// lineDiff is a minimal line diff of a and b (longest common
// subsequence), in order.
func lineDiff(a, b string) []diffLine {
	x, y := splitLines(a), splitLines(b)
	var out []diffLine
	head := 0
	for head < len(x) && head < len(y) && x[head] == y[head] {
		out = append(out, diffLine{"same", " ", x[head]})
		head++
	}
	tail := 0
	for tail < len(x)-head && tail < len(y)-head && x[len(x)-1-tail] == y[len(y)-1-tail] {
		tail++
	}
	out = append(out, middleDiff(x[head:len(x)-tail], y[head:len(y)-tail])...)
	for _, l := range x[len(x)-tail:] {
		out = append(out, diffLine{"same", " ", l})
	}
	return out
}

func middleDiff(x, y []string) []diffLine {
	n, m := len(x), len(y)
	out := make([]diffLine, 0, n+m)
	if n*m > maxDiffCells {
		for _, l := range x {
			out = append(out, diffLine{"del", "-", l})
		}
		for _, l := range y {
			out = append(out, diffLine{"add", "+", l})
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
			out = append(out, diffLine{"same", " ", x[i]})
			i, j = i+1, j+1
		case at(i+1, j) >= at(i, j+1):
			out = append(out, diffLine{"del", "-", x[i]})
			i++
		default:
			out = append(out, diffLine{"add", "+", y[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, diffLine{"del", "-", x[i]})
	}
	for ; j < m; j++ {
		out = append(out, diffLine{"add", "+", y[j]})
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
