package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// printTable prints every size's points as one table, with the ratios the
// comparison is about, then what each side logged.
func printTable(w io.Writer, all []sizeResult) {
	fmt.Fprintln(w, "\nClosed loop (each connection sends as soon as it has its answer):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tconns\ttarget\tdecisions/s\tp50\tp99\terrors\tgate/this\t")
	for _, r := range all {
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
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%d\t%s\t\n", r.Size, p.Conns, p.Target, p.Rate, ms(p.P50), ms(p.P99), p.Errors, ratio)
		}
	}
	_ = tw.Flush()
	if len(all) > 0 && len(all[0].Open) > 0 {
		fmt.Fprintln(w, "\nOpen loop (a fixed rate offered over 64 connections; a request delayed by a busy connection is timed from when it should have been sent):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "size\ttarget\toffered/s\tanswered/s\tp50\tp99\terrors\t")
		for _, r := range all {
			for _, p := range r.Open {
				if p.Rate == 0 { // every answer came after the window closed
					fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t\n", r.Size, p.Target, p.offered, "0", "over capacity", "-", p.Errors)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%d\t\n", r.Size, p.Target, p.offered, p.Rate, ms(p.P50), ms(p.P99), p.Errors)
			}
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w, "\nAudit trail:")
	for _, r := range all {
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

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
