package fault

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestFaults breaks each part once under load and holds the system to its
// invariants: (a) every ALLOW an agent saw has its committed Chron row;
// (b) no ALLOW for an agent suspended before the fault; (c) no call waits
// past the client timeout (a hang) however broken the system is; (d) the
// service comes back by itself within recoveryBound of the repair. It
// prints the table docs/reliability.md keeps (and writes it to the file
// $FAULT_TABLE names).
func TestFaults(t *testing.T) {
	s := newSystem(t)
	for _, f := range faults() {
		s.run(t, f.name, f, testRate, testWorkers, time.Time{})
	}
	t.Run("claiim chron verify", s.chronVerify)
	s.rows = append(s.rows, row{fault: "manager leader killed", note: "see test/ha"})
	writeTable(t, s.rows)
}

// run exercises a fault in a subtest and keeps its row for the table.
func (s *system) run(t *testing.T, name string, f fault, rate float64, workers int, until time.Time) {
	n := len(s.rows)
	t.Run(name, func(t *testing.T) { s.exercise(t, f, rate, workers, until) })
	if len(s.rows) == n {
		s.rows = append(s.rows, row{fault: f.name, note: "FAILED before its end"})
	}
}

// row is one line of the table.
type row struct {
	fault                                          string
	decisions, allow, deny, errors, hangs, missing int
	recovery, slowest                              time.Duration
	note                                           string
}

// exercise runs one fault under load: B suspended and denied first, the
// load answered, the fault injected and repaired, the service back; the
// load keeps going until `until` (at least a second after recovery). Its
// row goes to s.rows.
func (s *system) exercise(t *testing.T, f fault, rate float64, workers int, until time.Time) {
	t0 := time.Now()
	s.ensureServing(t)
	suspended := s.suspendB(t)
	t.Logf("agent B suspended and denied in %s", time.Since(t0).Round(time.Millisecond))
	l := s.startLoad(rate, workers)
	t.Cleanup(func() { l.finish() })
	eventually(t, 30*time.Second, "agent A allowed under load before the fault", func() error {
		if _, ok := firstAllow(l.snapshot(), time.Time{}, ""); !ok {
			return errors.New("no ALLOW yet")
		}
		return nil
	})
	w := &window{}
	f.inject(t, s, w)
	bound := cmp.Or(f.recovery, recoveryBound)
	var back time.Time
	eventually(t, bound, "(d) service back: agent A allowed after the repair", func() error {
		var ok bool
		if back, ok = firstAllow(l.snapshot(), w.healed, w.stream); !ok {
			return fmt.Errorf("no ALLOW for agent A in the %s since the repair", time.Since(w.healed).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("fault held %s; service back %s after the repair", w.healed.Sub(w.start).Round(time.Millisecond), back.Sub(w.healed).Round(time.Millisecond))
	time.Sleep(max(time.Second, time.Until(until))) // the load goes on after recovery
	calls := append(l.finish(), w.probes...)
	r := s.summarize(t, f.name, calls, suspended)
	if r.recovery = back.Sub(w.healed); r.recovery > bound {
		t.Errorf("(d) service came back %s after the repair; the bound is %s", r.recovery, bound)
	}
	if f.check != nil {
		if err := f.check(s, w, calls); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		r.note = "FAILED"
	}
	s.rows = append(s.rows, r)
}

// summarize counts the calls and checks invariants (a), (b) and (c).
func (s *system) summarize(t *testing.T, name string, calls []call, suspended time.Time) row {
	r := row{fault: name, decisions: len(calls)}
	allowed := map[string]string{} // decision id → agent name
	for _, c := range calls {
		switch c.outcome {
		case outcomeAllow:
			r.allow++
			allowed[c.decisionID] = s.agentByLabel(c.agent).name
		case outcomeDeny:
			r.deny++
		default:
			r.errors++
		}
		if c.hang {
			r.hangs++
		}
		r.slowest = max(r.slowest, c.end.Sub(c.start))
		if c.agent == s.b.label && c.outcome == outcomeAllow {
			t.Errorf("(b) agent B, suspended before the fault, was allowed: decision %s at %s", c.decisionID, c.end.Format(time.StampMilli))
		}
	}
	if r.hangs > 0 {
		t.Errorf("(c) %d calls got no answer within the client timeout (%s)", r.hangs, callTimeout)
	}
	r.missing = s.missingRows(t, allowed)
	if r.missing > 0 {
		t.Errorf("(a) %d of %d ALLOWs have no committed Chron row", r.missing, len(allowed))
	}
	if n := s.allowRowsSince(t, s.b, suspended); n > 0 {
		t.Errorf("(b) Chron holds %d ALLOW decisions for agent B since its suspension", n)
	}
	return r
}

func (s *system) agentByLabel(label string) agent {
	for _, a := range []agent{s.b, s.c} {
		if label == a.label {
			return a
		}
	}
	return s.a
}

// missingRows counts the ALLOWs whose Chron row (kind decision, outcome
// ALLOW, the same agent) is not in PostgreSQL. Only a failing query is
// retried, never a missing row: an ALLOW is answered after its commit.
func (s *system) missingRows(t *testing.T, allowed map[string]string) int {
	ids := make([]string, 0, len(allowed))
	for id := range allowed {
		ids = append(ids, id)
	}
	found := map[string]string{}
	eventually(t, time.Minute, "querying Chron", func() error {
		rows, err := s.env.Chron.Query(s.ctx, `SELECT id, agent_name FROM chron_records
			WHERE id = ANY($1) AND kind = 'decision' AND outcome = 'ALLOW'`, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, name string
			if err := rows.Scan(&id, &name); err != nil {
				return err
			}
			found[id] = name
		}
		return rows.Err()
	})
	missing := 0
	for id, name := range allowed {
		if found[id] != name {
			missing++
		}
	}
	return missing
}

// allowRowsSince counts ALLOW decisions Chron holds for the agent since t0.
func (s *system) allowRowsSince(t *testing.T, a agent, t0 time.Time) int {
	var n int
	eventually(t, time.Minute, "querying Chron", func() error {
		return s.env.Chron.QueryRow(s.ctx, `SELECT count(*) FROM chron_records
			WHERE kind = 'decision' AND outcome = 'ALLOW' AND agent_namespace = $1 AND agent_name = $2 AND time >= $3`,
			a.ns, a.name, t0).Scan(&n)
	})
	return n
}

// table renders rows as the Markdown table docs/reliability.md keeps.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| fault | decisions | ALLOW | DENY | errors | hangs | rows missing | recovery s | slowest s |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		if r.decisions == 0 && r.note != "" {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | |\n", r.fault, r.note)
			continue
		}
		name := r.fault
		if r.note != "" {
			name += " (" + r.note + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %.1f | %.1f |\n", name, r.decisions, r.allow, r.deny, r.errors,
			r.hangs, r.missing, r.recovery.Seconds(), r.slowest.Seconds())
	}
	return b.String()
}

// writeTable logs the table and writes it to $FAULT_TABLE when set.
func writeTable(t *testing.T, rows []row, extra ...string) {
	text := table(rows) + strings.Join(extra, "")
	t.Log("\n" + text)
	if path := os.Getenv("FAULT_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Errorf("writing FAULT_TABLE: %v", err)
		}
	}
}
