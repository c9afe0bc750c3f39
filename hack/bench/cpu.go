package main

// CPU time of the servers under test and of PostgreSQL, read from /proc
// around the measured window: what one decision costs each process,
// whatever the placement.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on
// Linux whatever the kernel's HZ).
const clockTick = 10 * time.Millisecond

// procTimes reads /proc/<pid>/stat: its parent, its own CPU time (user +
// system) and that of its children it has waited for.
func procTimes(pid int) (ppid int, self, reaped time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// start after the last ')', with field 3 (state) first.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	field := func(n int) int64 { v, _ := strconv.ParseInt(f[n-3], 10, 64); return v }
	return int(field(4)), time.Duration(field(14)+field(15)) * clockTick, time.Duration(field(16)+field(17)) * clockTick, nil
}

// cpuMeter reads the CPU time of the servers under test and of a
// PostgreSQL cluster.
type cpuMeter struct {
	servers    []int // pids; their own time only (no children)
	postmaster int   // 0: PostgreSQL is not measured (not on this machine)
}

// cpuSample is one reading.
type cpuSample struct{ server, pg time.Duration }

func (m cpuMeter) read() (cpuSample, error) {
	var s cpuSample
	for _, pid := range m.servers {
		_, t, _, err := procTimes(pid)
		if err != nil {
			return s, err
		}
		s.server += t
	}
	if m.postmaster == 0 {
		return s, nil
	}
	var err error
	s.pg, err = pgTimes(m.postmaster)
	return s, err
}

// pgTimes is the CPU time of the postmaster and every process it started:
// the live children read one by one, the exited ones through the
// postmaster's count of its reaped children, so a backend that ends
// during the window is counted either way.
func pgTimes(postmaster int) (time.Duration, error) {
	_, t, reaped, err := procTimes(postmaster)
	if err != nil {
		return 0, fmt.Errorf("PostgreSQL's postmaster: %w", err)
	}
	t += reaped
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		ppid, self, _, err := procTimes(pid)
		if err != nil || ppid != postmaster {
			continue // gone since the listing, or not PostgreSQL's
		}
		t += self
	}
	return t, nil
}

// postmasterOf finds the postmaster of the cluster at url: the parent of
// this connection's backend. It is 0 when that process is not on this
// machine (an external database), and PostgreSQL's CPU is then not
// reported.
func postmasterOf(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, err
	}
	ppid, _, _, err := procTimes(backend)
	if err != nil {
		return 0, nil
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); err != nil || !strings.HasPrefix(string(comm), "postgres") {
		return 0, nil
	}
	return ppid, nil
}

// cpuUse is a window's CPU per decision, in µs, and cores kept busy.
type cpuUse struct {
	ServerPerDecision float64 `json:"server_cpu_us_per_decision"`
	PGPerDecision     float64 `json:"postgres_cpu_us_per_decision,omitempty"`
	ServerCores       float64 `json:"server_cores_busy"`
	PGCores           float64 `json:"postgres_cores_busy,omitempty"`
}

func cpuPer(before, after cpuSample, decisions int64, window time.Duration) cpuUse {
	var u cpuUse
	if decisions <= 0 || window <= 0 {
		return u
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(decisions) }
	u.ServerPerDecision, u.PGPerDecision = us(after.server-before.server), us(after.pg-before.pg)
	u.ServerCores = float64(after.server-before.server) / float64(window)
	u.PGCores = float64(after.pg-before.pg) / float64(window)
	return u
}

func (u cpuUse) String() string {
	s := fmt.Sprintf("CPU %.0fµs/decision (%.2f cores)", u.ServerPerDecision, u.ServerCores)
	if u.PGCores > 0 {
		s += fmt.Sprintf(", PostgreSQL %.0fµs/decision (%.2f cores)", u.PGPerDecision, u.PGCores)
	}
	return s
}
