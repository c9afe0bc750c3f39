package whatif

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/claiim/claiim-operator/gate/decide"
)

// maxExamples bounds the request ids kept per group.
const maxExamples = 3

// Answer is an outcome and its reason code.
type Answer struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

func (a Answer) String() string { return a.Outcome + " " + a.Reason }

// Flip is a group of requests of one agent and action whose answer would
// go from one answer to another.
type Flip struct {
	Agent  string `json:"agent"` // namespace/name
	Action string `json:"action"`
	From   Answer `json:"from"`
	To     Answer `json:"to"`
	Count  int    `json:"count"`
	// Message is the changed world's explanation for the first example.
	Message  string   `json:"message"`
	Examples []string `json:"examples"` // Chron row ids
}

// Undecided is a group of requests that cannot be replayed, by why.
type Undecided struct {
	Why      string   `json:"why"`
	Count    int      `json:"count"`
	Examples []string `json:"examples"`
}

// Report is a what-if's result.
type Report struct {
	Change []string `json:"change"`
	Window string   `json:"window,omitempty"`
	// Read is how many requests were read; More that the source holds
	// more; Replayed how many of those were replayed before the budget
	// ran out. Sampled says so in words when not everything was.
	Read     int    `json:"read"`
	More     bool   `json:"more,omitempty"`
	Replayed int    `json:"replayed"`
	Sampled  string `json:"sampled,omitempty"`

	Changed     int         `json:"changed"`
	Unchanged   int         `json:"unchanged"`
	Undecidable int         `json:"undecidable"`
	Skipped     int         `json:"skipped"` // rows that are not an agent's decidable request
	Flips       []Flip      `json:"flips"`
	Undecided   []Undecided `json:"undecided"`
	Notes       []string    `json:"notes,omitempty"`

	stopped string // why reading stopped (Options.Stopped)
	flips   map[flipKey]int
	byWhy   map[string]int
}

type flipKey struct {
	agent, action string
	from, to      Answer
}

func newReport(change []string, read int, o Options) *Report {
	return &Report{Change: change, Window: o.Window, Read: read, More: o.Stopped != "", stopped: o.Stopped, Flips: []Flip{}, Undecided: []Undecided{},
		flips: map[flipKey]int{}, byWhy: map[string]int{}}
}

func (r *Report) compare(q *Request, now, then decide.Decision) {
	from, to := Answer{string(now.Outcome), now.Reason}, Answer{string(then.Outcome), then.Reason}
	if from == to {
		r.Unchanged++
		return
	}
	r.Changed++
	k := flipKey{q.AgentNamespace + "/" + q.AgentName, q.Action, from, to}
	i, ok := r.flips[k]
	if !ok {
		i = len(r.Flips)
		r.flips[k] = i
		r.Flips = append(r.Flips, Flip{Agent: k.agent, Action: k.action, From: from, To: to, Message: then.Message})
	}
	f := &r.Flips[i]
	f.Count++
	if len(f.Examples) < maxExamples {
		f.Examples = append(f.Examples, q.ID)
	}
}

func (r *Report) undecided(q *Request, why string) {
	r.Undecidable++
	i, ok := r.byWhy[why]
	if !ok {
		i = len(r.Undecided)
		r.byWhy[why] = i
		r.Undecided = append(r.Undecided, Undecided{Why: why})
	}
	u := &r.Undecided[i]
	u.Count++
	if len(u.Examples) < maxExamples {
		u.Examples = append(u.Examples, q.ID)
	}
}

// finish orders the groups, largest first, and says whether it sampled.
func (r *Report) finish() {
	sort.SliceStable(r.Flips, func(i, j int) bool { return r.Flips[i].Count > r.Flips[j].Count })
	sort.SliceStable(r.Undecided, func(i, j int) bool { return r.Undecided[i].Count > r.Undecided[j].Count })
	of := count(r.Read)
	if r.More {
		of = "more than " + of
	}
	switch {
	case r.Replayed < r.Read:
		r.Sampled = fmt.Sprintf("sampled %s of %s requests (the newest): the time budget ran out", count(r.Replayed), of)
	case r.More && r.Read == 0:
		r.Sampled = "no request could be read: reading stopped at " + r.stopped
	case r.More:
		r.Sampled = fmt.Sprintf("sampled the newest %s of %s requests: reading stopped at %s", count(r.Replayed), of, r.stopped)
	}
}

// count writes n with thousands separators: "9,000".
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Headline is the report in one sentence.
func (r *Report) Headline() string {
	window := ""
	if r.Window != "" {
		window = " of " + r.Window
	}
	s := fmt.Sprintf("replayed %s requests%s: %s would change, %s would not, %s cannot be decided",
		count(r.Replayed), window, count(r.Changed), count(r.Unchanged), count(r.Undecidable))
	if r.Sampled != "" {
		s += "; " + r.Sampled
	}
	return s
}

// Warnings is the report as short admission warnings: the headline, then
// the largest groups, at most max lines in all.
func (r *Report) Warnings(max int) []string {
	out := []string{"what-if: " + r.Headline()}
	for i, f := range r.Flips {
		if len(out) == max-1 && i < len(r.Flips)-1 {
			out = append(out, fmt.Sprintf("what-if: and %d more groups of changed requests (claiim whatif shows all)", len(r.Flips)-i))
			break
		}
		if len(out) >= max {
			break
		}
		out = append(out, "what-if: "+f.Summary())
	}
	if len(out) < max && r.Undecidable > 0 && len(r.Undecided) > 0 {
		out = append(out, fmt.Sprintf("what-if: %s cannot be decided: %s", requests(r.Undecidable), r.Undecided[0].Why))
	}
	return out
}

// Summary is one flip in words.
func (f Flip) Summary() string {
	return fmt.Sprintf("%s of agent %s would flip %s→%s (action %s, %s → %s)", requests(f.Count), f.Agent, f.From.Outcome, f.To.Outcome, f.Action, f.From.Reason, f.To.Reason)
}

func requests(n int) string {
	if n == 1 {
		return "1 request"
	}
	return count(n) + " requests"
}

// Summary is the report in a few sentences, for a status field.
func (r *Report) Summary(max int) string {
	s := strings.Join(r.Warnings(4), "; ")
	s = strings.ReplaceAll(s, "; what-if: ", "; ")
	if len(s) > max {
		// Cut on a rune boundary: the arrows are multi-byte.
		s = strings.ToValidUTF8(s[:max-len("…")], "") + "…"
	}
	return s
}

// Print writes the report as tables.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "What-if: %s\n", strings.Join(r.Change, ", "))
	fmt.Fprintf(w, "%s.\n", upper(r.Headline()))
	if r.Skipped > 0 {
		fmt.Fprintf(w, "%s rows were not an agent's decidable request (no agent, or an invalid action) and were skipped.\n", count(r.Skipped))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s.\n", n)
	}
	if len(r.Flips) > 0 {
		fmt.Fprintln(w, "\nWOULD CHANGE")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AGENT\tACTION\tNOW\tWITH THE CHANGE\tCOUNT\tEXAMPLES")
		for _, f := range r.Flips {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", f.Agent, f.Action, f.From, f.To, f.Count, strings.Join(f.Examples, ","))
		}
		_ = tw.Flush()
	}
	if len(r.Undecided) > 0 {
		fmt.Fprintln(w, "\nCANNOT DECIDE")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "COUNT\tWHY\tEXAMPLES")
		for _, u := range r.Undecided {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", u.Count, u.Why, strings.Join(u.Examples, ","))
		}
		_ = tw.Flush()
	}
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
