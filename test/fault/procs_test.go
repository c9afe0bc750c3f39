package fault

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// shutdownDrain is the gates' --shutdown-drain: long enough for the load's
// endpoint switch (route) to move off a terminating gate, as a Service
// does after a failed readiness probe; shorter than the product's 5 s
// default to keep the suite quick.
const shutdownDrain = 2 * time.Second

// gateProc is one `claiim gate` process.
type gateProc struct {
	replica string
	port    int
	base    string // http://127.0.0.1:<port>
	metrics string // http://127.0.0.1:<port>/metrics
	cmd     *exec.Cmd
	exited  chan struct{}
	log     string
}

func (s *system) nextReplica() string {
	s.gates++
	return fmt.Sprintf("gate-%d", s.gates)
}

// startGate runs the gate binary as a Deployment's container would and
// waits until /ready. Port 0 picks a free port (a new pod); a port taken
// before is the same pod's container restarted.
func (s *system) startGate(t testing.TB, replica string, port int) *gateProc {
	t.Helper()
	var err error
	if port == 0 {
		if port, err = pgtest.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	mport, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"gate", fmt.Sprintf("--listen=127.0.0.1:%d", port), fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", mport), "--metrics-secure=false",
		"--replica=" + replica, "--shutdown-drain=" + shutdownDrain.String(), "--stale-after=" + s.staleAfter.String(),
		"--chron-streams=32", // killed gates hold their stream's Lease until it expires
		"--ignore-admission"} // this environment runs no admission webhooks: nothing is stamped
	g := &gateProc{replica: replica, port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), exited: make(chan struct{}),
		log: filepath.Join(s.dir, replica+".log")}
	logf, err := os.OpenFile(g.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command(s.claiim, args...)
	g.cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig, "DATABASE_URL="+s.dbURL)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	s.procsMu.Lock()
	s.procs = append(s.procs, g)
	s.procsMu.Unlock()
	eventually(t, time.Minute, "gate "+replica+" ready", func() error {
		select {
		case <-g.exited:
			return fmt.Errorf("it exited: %s", g.tail())
		default:
		}
		return ready(g.base)
	})
	return g
}

// ready is the gate's readiness probe.
func ready(base string) error {
	resp, err := http.Get(base + "/ready")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/ready: %s", resp.Status)
	}
	return nil
}

// signal sends sig to the gate.
func (g *gateProc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling gate %s: %v", g.replica, err)
	}
}

// waitExit waits for the gate to exit.
func (g *gateProc) waitExit(t testing.TB, limit time.Duration) {
	t.Helper()
	select {
	case <-g.exited:
	case <-time.After(limit):
		t.Fatalf("gate %s did not exit within %s:\n%s", g.replica, limit, g.tail())
	}
}

func (g *gateProc) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// tail is the end of the gate's log, each line cut short.
func (g *gateProc) tail() string {
	b, _ := os.ReadFile(g.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-10):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// gateProcs is every gate process started so far.
func (s *system) gateProcs() []*gateProc {
	s.procsMu.Lock()
	defer s.procsMu.Unlock()
	return append([]*gateProc(nil), s.procs...)
}

// stopGates kills every gate this test started.
func (s *system) stopGates() {
	for _, g := range s.gateProcs() {
		if g.alive() {
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
	}
}

// pgProcs finds PostgreSQL's processes to signal them: the postmaster
// (its postmaster.pid) and its children.
type pgProcs struct {
	data string
}

func findPostgres(ctx context.Context, env *testenv.Env) (*pgProcs, error) {
	p := &pgProcs{}
	if err := env.Chron.QueryRow(ctx, "SHOW data_directory").Scan(&p.data); err != nil {
		return nil, fmt.Errorf("finding PostgreSQL's data directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(p.data, "postmaster.pid")); err != nil {
		return nil, fmt.Errorf("PostgreSQL runs elsewhere (%s is not this machine's): %w", p.data, err)
	}
	return p, nil
}

// signal sends sig to every PostgreSQL process: the postmaster is
// stopped first so that it forks no backend the list would miss, then its
// children get sig, then the postmaster. It returns every pid signalled.
func (p *pgProcs) signal(sig syscall.Signal) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(p.data, "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL's postmaster.pid: %w", err)
	}
	pm, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("stopping the postmaster (pid %d): %w", pm, err)
	}
	pids := append(children(pm), pm)
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return pids, fmt.Errorf("signalling PostgreSQL process %d: %w", pid, err)
		}
	}
	return pids, nil
}

// children are the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procField(child, "PPid"); ppid == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// procField reads one field of /proc/<pid>/status.
func procField(pid int, name string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// gone reports whether pid has exited and been reaped: PostgreSQL
// refuses to start while its lock file names a live pid, and a zombie is
// one until init reaps it.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// apiserverProc is envtest's kube-apiserver, which the test stops and
// starts again with the same arguments (port, certificates, etcd), so
// every client's credentials stay valid.
type apiserverProc struct {
	pid    int
	argv   []string
	cmd    *exec.Cmd // set once this test started it again
	exited chan struct{}
}

// findAPIServer finds the kube-apiserver envtest started as a child of
// this test process.
func findAPIServer() (*apiserverProc, error) {
	for _, pid := range children(os.Getpid()) {
		if name, _ := procField(pid, "Name"); name != "kube-apiserver" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return nil, err
		}
		return &apiserverProc{pid: pid, argv: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")}, nil
	}
	return nil, errors.New("no kube-apiserver child process found")
}

// kill stops the kube-apiserver as a crash or a lost node does
// (SIGKILL: its clients' connections drop, new ones are refused) and
// returns once it has exited.
func (a *apiserverProc) kill(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(a.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing kube-apiserver: %v", err)
	}
	eventually(t, 30*time.Second, "kube-apiserver exits", func() error {
		if st, _ := procField(a.pid, "State"); st == "" || strings.HasPrefix(st, "Z") {
			return nil
		}
		return fmt.Errorf("pid %d still runs", a.pid)
	})
}

// start runs the kube-apiserver again with its old arguments.
func (a *apiserverProc) start(t testing.TB, logPath string) {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(a.argv[0], a.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kube-apiserver again: %v", err)
	}
	a.cmd, a.pid, a.exited = cmd, cmd.Process.Pid, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(a.exited)
}

// stop ends a kube-apiserver this test started (envtest stops its own).
// It is killed: with etcd already stopped, a graceful stop takes long.
func (a *apiserverProc) stop() {
	if a == nil || a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.exited
}
