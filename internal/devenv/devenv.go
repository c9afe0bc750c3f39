// Package devenv is the local control plane behind `make dev`: etcd,
// kube-apiserver (envtest), a throwaway PostgreSQL, and the manager, the
// gate and the console as child processes of the production claiim binary.
// It links test code (test/testenv, test/pgtest), so only cmd/claiim-dev
// imports it, never the image's binary.
package devenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The seed's people and the components' identities in the local control
// plane.
const (
	devAdmin   = "admin@claiim.io"
	devPeer    = "peer@claiim.io"
	devManager = "system:serviceaccount:claiim-system:claiim-manager"
	devGate    = "system:serviceaccount:claiim-system:claiim-gate"
	devConsole = "system:serviceaccount:claiim-system:claiim-console"
)

// Usage is claiim-dev's help text.
const Usage = `Usage:
  claiim-dev up   [--dir .dev] [--gate-port 8181] [--console-port 3001]   start the local control plane (idempotent)
  claiim-dev down [--dir .dev]                                             stop all of it
The manager, the gate and the console run from the claiim binary beside claiim-dev ('make build'
builds both into bin/); --claiim-binary or $CLAIIM_BINARY points at another.
Needs KUBEBUILDER_ASSETS (kube-apiserver, etcd, kubectl; 'make dev' builds them) and
PostgreSQL server binaries, or DATABASE_URL pointing at your own database.
`

type devFlags struct {
	dir         string
	gatePort    int
	consolePort int
	dbURL       string
	claiim      string // the production binary that runs the manager, the gate and the console
}

// Run runs `claiim-dev up|down|serve` (serve is the supervisor up starts).
func Run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, Usage)
		return errors.New("missing command")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var f devFlags
	fs.StringVar(&f.dir, "dir", ".dev", "where state, kubeconfigs, logs and the env file live")
	fs.IntVar(&f.gatePort, "gate-port", 8181, "port of the gate on localhost")
	fs.IntVar(&f.consolePort, "console-port", 3001, "port of the console on localhost")
	fs.StringVar(&f.dbURL, "database-url", os.Getenv("DATABASE_URL"), "use this PostgreSQL for Chron instead of a throwaway one")
	fs.StringVar(&f.claiim, "claiim-binary", os.Getenv("CLAIIM_BINARY"), "the claiim binary that runs the manager and the gate (default $CLAIIM_BINARY, else claiim beside claiim-dev)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	f.dir = dir
	switch args[0] {
	case "up":
		return devUp(f)
	case "down":
		return devDown(f)
	case "serve":
		return devServe(f)
	}
	fmt.Fprint(os.Stderr, Usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func (f devFlags) path(name string) string { return filepath.Join(f.dir, name) }

func (f devFlags) gateURL() string { return fmt.Sprintf("http://localhost:%d", f.gatePort) }

// consoleURL is plain http: browsers keep the console's Secure cookie on
// http://localhost, a secure context.
func (f devFlags) consoleURL() string { return fmt.Sprintf("http://localhost:%d", f.consolePort) }

// claiimBinary is the absolute path of the production binary: the flag,
// else claiim in claiim-dev's own directory (bin/claiim beside bin/claiim-dev).
func (f devFlags) claiimBinary() (string, error) {
	path := f.claiim
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		path = filepath.Join(filepath.Dir(exe), "claiim")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("no claiim binary at %s: run 'make build', which builds bin/claiim beside bin/claiim-dev (or point --claiim-binary or $CLAIIM_BINARY at one)", abs)
	}
	return abs, nil
}

// runningPID returns the supervisor's pid if it is alive.
func (f devFlags) runningPID() int {
	b, err := os.ReadFile(f.path("pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}
