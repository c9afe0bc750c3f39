package devenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claiim/claiim-operator/test/pgtest"
)

func devUp(f devFlags) error {
	if pid := f.runningPID(); pid != 0 {
		fmt.Printf("The local control plane is already running (pid %d).\n", pid)
		printDevSummary(f)
		return nil
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); assets == "" || err != nil {
			return fmt.Errorf("no %s in KUBEBUILDER_ASSETS=%q: run 'make dev', which builds kube-apiserver, etcd and kubectl once and sets it", b, assets)
		}
	}
	if f.dbURL == "" {
		if _, err := pgtest.BinDir(); err != nil {
			return fmt.Errorf("%w (the seed's \"your database is yours\": DATABASE_URL=postgres://... make dev)", err)
		}
	}
	claiim, err := f.claiimBinary()
	if err != nil {
		return err
	}
	if err := portFree(f.gatePort, "the gate's", "--gate-port"); err != nil {
		return err
	}
	if err := portFree(f.consolePort, "the console's", "--console-port"); err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(f.path("env"))
	logf, err := os.Create(f.path("dev.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "serve", "--dir", f.dir, "--gate-port", strconv.Itoa(f.gatePort), "--console-port", strconv.Itoa(f.consolePort),
		"--claiim-binary", claiim)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+f.dbURL) // not on a command line: it may carry a password
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the local control plane: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Println("Starting the local control plane: etcd, kube-apiserver, PostgreSQL, the manager with its webhooks, the gate, the console...")
	steps := stepFollower{path: f.path("dev.log")}
	defer steps.print() // the last steps, also when it fails
	deadline := time.After(3 * time.Minute)
	waiting := false
	for {
		steps.print()
		select {
		case err := <-exited:
			return fmt.Errorf("the local control plane stopped while starting (%w); see %s:\n%s", err, f.path("dev.log"), tail(f.path("dev.log"), 30))
		case <-deadline:
			return fmt.Errorf("the local control plane did not become ready in 3 minutes; see the logs in %s:\n%s", f.dir, tail(f.path("dev.log"), 30))
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := os.Stat(f.path("env")); err != nil {
			continue
		}
		if !waiting {
			waiting = true
			steps.print() // the steps before the env file, first
			fmt.Println("  waiting for the gate and the console to answer (the manager's webhooks, the gate's caches)")
		}
		if answersOK(f.gateURL()+"/ready") && answersOK(f.consoleURL()+"/healthz") {
			printDevSummary(f)
			return nil
		}
	}
}

// stepFollower echoes the supervisor's steps from dev.log as they happen
// ("06:51:02 starting etcd and kube-apiserver (RBAC on)"), so the person
// who ran make dev sees what it is waiting for; the rest of the log (the
// migration's output) stays in the file.
type stepFollower struct {
	path string
	off  int64
}

func (s *stepFollower) print() {
	file, err := os.Open(s.path)
	if err != nil {
		return
	}
	defer file.Close()
	b, err := io.ReadAll(io.NewSectionReader(file, s.off, 1<<20))
	if err != nil && !errors.Is(err, io.EOF) {
		return
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return // no complete line yet
	}
	s.off += int64(end + 1)
	for _, line := range strings.Split(string(b[:end]), "\n") {
		if isStep(line) {
			fmt.Println("  " + line)
		}
	}
}

// isStep says whether a dev.log line is one of devServe's steps: it starts
// with the time of day.
func isStep(line string) bool {
	_, err := time.Parse(time.TimeOnly, line[:min(len(line), len(time.TimeOnly))])
	return err == nil && len(line) > len(time.TimeOnly) && line[len(time.TimeOnly)] == ' '
}

// answersOK says whether url answers 200.
func answersOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func printDevSummary(f devFlags) {
	rel := f.dir
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, f.dir); err == nil && !strings.HasPrefix(r, "..") {
			rel = r
		}
	}
	fmt.Printf(`
CLAIIM is running.
  gate:          %[1]s  (curl %[1]s/health)
  console:       %[3]s  log in by pasting a person's token:
                   admin@claiim.io  %[2]s/token-admin
                   peer@claiim.io   %[2]s/token-peer
                 (curl: curl -si %[3]s/login --data-urlencode token@%[2]s/token-admin)
  kubeconfigs:   %[2]s/kubeconfig-admin (admin@claiim.io), %[2]s/kubeconfig-peer (peer@claiim.io)
  logs:          %[2]s/*.log

Next:
  source %[2]s/env                 # KUBECONFIG (admin), CLAIIM_PEER_KUBECONFIG, DATABASE_URL, CLAIIM_GATE_URL, CLAIIM_CONSOLE_URL, kubectl on PATH
  kubectl get aiorg,skill,pol,agent,pim
  make rehearsal                  # the seed's onboarding, steps 3-11
  make dev-down                   # stop everything
`, f.gateURL(), rel, f.consoleURL())
}

func devDown(f devFlags) error {
	pid := f.runningPID()
	if pid == 0 {
		fmt.Println("The local control plane is not running.")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping pid %d: %w", pid, err)
	}
	for i := 0; i < 600; i++ {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("The local control plane is stopped.")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return fmt.Errorf("the local control plane (pid %d) did not stop in 60s and was killed; see %s", pid, f.path("dev.log"))
}

// portFree says which port is taken (whose, and the flag to move it), and
// by what when ss can tell.
func portFree(port int, whose, flag string) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err == nil {
		return l.Close()
	}
	by := ""
	if out, err := exec.Command("ss", "-H", "-ltnp", fmt.Sprintf("sport = :%d", port)).Output(); err == nil && len(out) > 0 {
		by = ": " + strings.TrimSpace(string(out))
	}
	return fmt.Errorf("port %d (%s) is taken%s; stop that process or use %s", port, whose, by, flag)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
