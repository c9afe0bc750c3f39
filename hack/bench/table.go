package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/claiim/claiim-operator/hack/bench/fixture"
)

// printTable prints every size's points, one section per placement, with
// the ratios the comparison is about and each side's CPU per decision,
// then what each side logged.
func printTable(w io.Writer, all []sizeResult) {
	for _, pl := range placementsOf(all) {
		fmt.Fprintf(w, "\n[%s] Closed loop (each connection sends as soon as it has its answer; CPU in µs per decision):\n", pl)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "size\tconns\ttarget\tdecisions/s\tp50\tp99\terrors\tgate/this\tCPU\tPostgreSQL CPU\t")
		for _, r := range all {
			if r.Placement != pl {
				continue
			}
			gate := map[int]float64{}
			for _, p := range r.Points {
				if p.Target == tGate {
					gate[p.Conns] = p.Rate
				}
			}
			for _, p := range r.Points {
				ratio := "-"
				if g, ok := gate[p.Conns]; ok && p.Target != tGate && p.Rate > 0 {
					ratio = fmt.Sprintf("%.2f×", g/p.Rate)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%d\t%s\t%s\t\n", r.Size, p.Conns, p.Target, p.Rate, ms(p.P50), ms(p.P99), p.Errors, ratio, p.CPU.columns())
			}
		}
		_ = tw.Flush()
		printPeaks(w, all, pl)
		if !hasOpen(all, pl) {
			continue
		}
		fmt.Fprintf(w, "\n[%s] Open loop (a fixed rate offered over 64 connections; a request delayed by a busy connection is timed from when it should have been sent):\n", pl)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "size\ttarget\toffered/s\tanswered/s\tp50\tp99\terrors\tCPU\tPostgreSQL CPU\t")
		for _, r := range all {
			if r.Placement != pl {
				continue
			}
			for _, p := range r.Open {
				if p.Rate == 0 { // every answer came after the window closed
					fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t-\t-\t\n", r.Size, p.Target, p.offered, "0", "over capacity", "-", p.Errors)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%d\t%s\t\n", r.Size, p.Target, p.offered, p.Rate, ms(p.P50), ms(p.P99), p.Errors, p.CPU.columns())
			}
		}
		_ = tw.Flush()
	}
	printSizeCost(w, all)
	fmt.Fprintln(w, "\nAudit trail:")
	for _, r := range all {
		if len(placementsOf(all)) > 1 {
			r.Size = r.Placement + ", " + r.Size
		}
		if r.GateAnswered > 0 {
			eq := "equal"
			if r.ChronRows != r.GateAnswered-r.GateShed-r.GateRefused {
				eq = "NOT EQUAL"
			}
			fmt.Fprintf(w, "  %s: gate answered %d requests (%d shed as OVERLOADED, %d unauthenticated counted in auth.refused rows), Chron holds %d committed decision rows (%s), %.1f rows per commit\n",
				r.Size, r.GateAnswered, r.GateShed, r.GateRefused, r.ChronRows, eq, r.AvgBatch)
		}
		if r.OPAAnswered > 0 {
			fmt.Fprintf(w, "  %s: OPA with its asynchronous decision log answered %d decisions; its sink received %d events (%.1f%%)\n",
				r.Size, r.OPAAnswered, r.OPALogged, 100*float64(r.OPALogged)/float64(r.OPAAnswered))
		}
		if o := r.Overload; o != nil {
			eq := "every other answer has its row"
			if o.Rows != o.Answered-o.Shed-o.Refused {
				eq = "rows ≠ answered − shed"
			}
			fmt.Fprintf(w, "  %s: overload (Chron queue of %d, %d connections): %d answered, %d shed as DENY OVERLOADED, %d rows (%s)\n",
				r.Size, o.QueueSize, o.Conns, o.Answered, o.Shed, o.Rows, eq)
		}
		if r.OutageReason != "" {
			fmt.Fprintf(w, "  %s: with PostgreSQL stopped the gate answered DENY %s, slowest in %s\n", r.Size, r.OutageReason, ms(r.OutageMax))
		}
	}
}

// peak is a target's best closed-loop rate and the connections it took.
type peak struct {
	Target string
	Conns  int
	Rate   float64
	CPU    cpuUse
}

// peaks are each target's best closed-loop point in r, in the order the
// targets ran. A server's capacity is its peak whatever the concurrency
// that reaches it: the gate, whose answer waits for a commit, needs more
// connections than a server that answers from memory to fill the machine.
func peaks(r sizeResult) []peak {
	var out []peak
	at := map[string]int{}
	for _, p := range r.Points {
		i, ok := at[p.Target]
		if !ok {
			at[p.Target] = len(out)
			out = append(out, peak{Target: p.Target, Conns: p.Conns, Rate: p.Rate, CPU: p.CPU})
			continue
		}
		if p.Rate > out[i].Rate {
			out[i] = peak{Target: p.Target, Conns: p.Conns, Rate: p.Rate, CPU: p.CPU}
		}
	}
	return out
}

// printPeaks prints, per size, each target's peak and the gate's peak
// against it: the ratios issue 15's targets are about.
func printPeaks(w io.Writer, all []sizeResult, pl string) {
	fmt.Fprintf(w, "\n[%s] Peaks (each target's best closed-loop point; gate/this compares peaks, whatever connections each took):\n", pl)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\ttarget\tpeak decisions/s\tat conns\tgate/this\tCPU\tPostgreSQL CPU\t")
	for _, r := range all {
		if r.Placement != pl {
			continue
		}
		ps := peaks(r)
		var gate float64
		for _, p := range ps {
			if p.Target == tGate {
				gate = p.Rate
			}
		}
		for _, p := range ps {
			ratio := "-"
			if gate > 0 && p.Target != tGate && p.Rate > 0 {
				ratio = fmt.Sprintf("%.2f×", gate/p.Rate)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%s\t%s\t\n", r.Size, p.Target, p.Rate, p.Conns, ratio, p.CPU.columns())
		}
	}
	_ = tw.Flush()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// placementsOf lists the placements measured, in the order they ran.
func placementsOf(all []sizeResult) []string {
	var out []string
	for _, r := range all {
		if len(out) == 0 || out[len(out)-1] != r.Placement {
			out = append(out, r.Placement)
		}
	}
	return out
}

func hasOpen(all []sizeResult, pl string) bool {
	for _, r := range all {
		if r.Placement == pl && len(r.Open) > 0 {
			return true
		}
	}
	return false
}

// columns are the table's CPU cells: the server's µs per decision (and
// cores busy), PostgreSQL's for the gate.
func (u cpuUse) columns() string {
	pg := "-"
	if u.PGCores > 0 {
		pg = fmt.Sprintf("%.0f (%.2f cores)", u.PGPerDecision, u.PGCores)
	}
	return fmt.Sprintf("%.0f (%.2f cores)\t%s", u.ServerPerDecision, u.ServerCores, pg)
}

// printSizeCost compares the gate's CPU per decision at each size with
// the seed's size at the same placement and connection count. It means
// what size alone costs only when the requests are the same: the seed's
// mix, which `-mix seed` sends to every size (the small fixture's own mix
// is the seed's).
func printSizeCost(w io.Writer, all []sizeResult) {
	type key struct {
		pl    string
		conns int
	}
	small := map[key]cpuUse{}
	for _, r := range all {
		if r.Size != fixture.Sizes[0].Name {
			continue
		}
		for _, p := range r.Points {
			if p.Target == tGate {
				small[key{r.Placement, p.Conns}] = p.CPU
			}
		}
	}
	header := false
	for _, r := range all {
		if r.Size == fixture.Sizes[0].Name || r.Mix != mixSeed {
			continue
		}
		for _, p := range r.Points {
			s, ok := small[key{r.Placement, p.Conns}]
			if p.Target != tGate || !ok || s.ServerPerDecision == 0 {
				continue
			}
			if !header {
				fmt.Fprintln(w, "\nCost of size: the gate's CPU per decision on the seed's requests, against the seed's size (small):")
				header = true
			}
			pg := ""
			if s.PGPerDecision > 0 {
				pg = fmt.Sprintf("; PostgreSQL %.0f µs against %.0f µs (%.2f×)", p.CPU.PGPerDecision, s.PGPerDecision, p.CPU.PGPerDecision/s.PGPerDecision)
			}
			fmt.Fprintf(w, "  [%s] %s, %d conns: gate %.0f µs against %.0f µs (%.2f×)%s\n", r.Placement, r.Size, p.Conns,
				p.CPU.ServerPerDecision, s.ServerPerDecision, p.CPU.ServerPerDecision/s.ServerPerDecision, pg)
		}
	}
}
