package upgrade

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// proc is one claiim process: a manager or a gate, as a pod runs it.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

// run starts bin with args and env (KUBECONFIG, DATABASE_URL: never on a
// command line), logging to dir/name.log. It is killed when the test ends
// if still running, and its log shown if the test failed.
func run(t *testing.T, dir, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, exited: make(chan struct{}), log: filepath.Join(dir, name+".log")}
	lf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); lf.Close(); close(p.exited) }()
	t.Cleanup(func() {
		if p.alive() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("--- %s's log ends with ---\n%s", name, p.tail(25))
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the process as the kubelet ends a pod: SIGTERM, then waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stopping %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit within a minute of SIGTERM:\n%s", p.name, p.tail(20))
	}
}

// waitReady polls check until it passes, failing at once if the process
// exits.
func (p *proc) waitReady(t *testing.T, what string, check func() error) {
	t.Helper()
	eventually(t, 2*time.Minute, p.name+" "+what, func() error {
		if !p.alive() {
			return gomega.StopTrying(p.name + " exited:\n" + p.tail(20))
		}
		return check()
	})
}

// tail is the end of the process's log, each line cut short.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// httpOK is a readiness probe: GET url answers 200.
func httpOK(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// servesTLS says the webhook server at addr completes a TLS handshake.
func servesTLS(addr string) func() error {
	return func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a liveness probe
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls f until it returns nil, or fails the test after limit.
func eventually(t testing.TB, limit time.Duration, what string, f func() error) {
	t.Helper()
	gomega.NewWithT(t).Eventually(f).WithTimeout(limit).WithPolling(50*time.Millisecond).Should(gomega.Succeed(), what)
}
