package main

// The servers under test as child processes: started (pinned to the server
// CPU), waited on until healthy, and stopped so that they flush.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/claiim/claiim-operator/test/pgtest"
)

// proc is a server under test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{} // closed when the process has exited
}

// serverGOGC is the collector setting of every Go server under test: the
// gate sets it for itself (server.TuneGC), so OPA and the no-op get it too.
const serverGOGC = "400"

// launch starts argv (pinned to the server CPU when onServerCPU) with its
// output in logPath; stdout, when wanted, is returned instead.
func (c *config) launch(ctx context.Context, argv []string, logPath string, onServerCPU, wantStdout bool) (*proc, io.Reader, error) {
	if onServerCPU && c.srvCPU != "" {
		argv = append([]string{"taskset", "-c", c.srvCPU}, argv...)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	p := &proc{log: logPath, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), "GOGC="+serverGOGC)
	if c.gomaxprocs > 0 {
		p.cmd.Env = append(p.cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", c.gomaxprocs))
	}
	p.cmd.Stderr = logf
	var out io.Reader
	if wantStdout {
		if out, err = p.cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, nil, err
		}
	} else {
		p.cmd.Stdout = logf
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, out, nil
}

// start runs this command's serve-* mode and waits for the address it
// prints and its /health.
func (c *config) start(ctx context.Context, dir, name string, onServerCPU bool, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, out, err := c.launch(ctx, append([]string{self}, args...), filepath.Join(dir, name+".log"), onServerCPU, true)
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p.addr = <-line:
	case <-time.After(60 * time.Second):
	}
	if p.addr == "" {
		p.stop()
		return nil, fmt.Errorf("%s did not start; see %s", name, p.log)
	}
	return p, waitHealthy(p, "/health")
}

// startOPA runs `opa run --server` over the fixture's policy and data (or,
// plain, the seed's rules as plain Rego), with decision logs uploaded to
// the sink when logged.
func (c *config) startOPA(ctx context.Context, dir string, plain, logged bool, sink string) (*proc, error) {
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	name, policy, data := "opa", "policy.rego", "data.json"
	if plain {
		name, policy, data = "opa-plain", "plain.rego", "plain-data.json"
	}
	// The store setting embedded OPA gets too (fixture.PrepareOPA): data
	// read as OPA values, not converted on every read.
	args := []string{"run", "--server", "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "error",
		"--disable-telemetry", "--optimize-store-for-read-speed"}
	if logged {
		name = "opa-log"
		cfg := filepath.Join(dir, "opa-decision-log.yaml")
		conf := fmt.Sprintf("services:\n  sink:\n    url: http://%s\ndecision_logs:\n  service: sink\n  reporting:\n    min_delay_seconds: 1\n    max_delay_seconds: 2\n", sink)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config-file", cfg)
	}
	args = append(args, filepath.Join(dir, policy), filepath.Join(dir, data))
	p, _, err := c.launch(ctx, append([]string{c.opa}, args...), filepath.Join(dir, name+".log"), true, false)
	if err != nil {
		return nil, err
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)
	return p, waitHealthy(p, "/health")
}

func waitHealthy(p *proc, path string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := httpClient.Get("http://" + p.addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was healthy; see %s", p.cmd.Path, p.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("%s did not become healthy in a minute; see %s", p.cmd.Path, p.log)
		}
	}
}

// stop ends the server with SIGINT (so OPA flushes its decision log and
// the gate drains its Chron queue) and waits for it.
func (p *proc) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
