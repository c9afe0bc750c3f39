// Command claiim is the one production CLAIIM binary, the image's
// entrypoint: `claiim manager` runs the operator, `claiim gate` the gate,
// `claiim console` the web console, `claiim chron` reads and verifies the
// audit log, `claiim test` runs decision tests offline (CI). The commands
// live in internal/cli; the local control plane is a separate binary,
// claiim-dev.
package main

import (
	"fmt"
	"os"

	"github.com/claiim/claiim-operator/internal/cli"
)

const usage = `claiim governs AI agents in Kubernetes.

Usage:
  claiim manager [flags]   run the operator (reconcilers)
  claiim gate [flags]      run the gate: agents ask it before every action
  claiim console [flags]   run the web console and Chron's read API (people log in with their own token)
  claiim chron COMMAND     read and verify Chron, the audit log (list, verify, migrate)
  claiim history KIND/NAME every stored generation of an AIOrg, Skill, Policy or Agent; one's spec; a diff
  claiim whatif -f FILE    which recent decisions a change would flip (replayed from Chron)
  claiim test DIR...       decide DecisionTest cases offline over the objects in DIR (for CI)

Run 'claiim <command> -h' for the flags of a command.
A local control plane with everything running: claiim-dev up|down (make dev).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "manager":
		err = cli.RunManager(os.Args[2:])
	case "gate":
		err = cli.RunGate(os.Args[2:])
	case "console":
		err = cli.RunConsole(os.Args[2:])
	case "chron":
		err = cli.RunChron(os.Args[2:], os.Stdout)
	case "history":
		err = cli.RunHistory(os.Args[2:], os.Stdout)
	case "whatif":
		err = cli.RunWhatIf(os.Args[2:], os.Stdout)
	case "test":
		err = cli.RunTest(os.Args[2:], os.Stdout)
	case "dev":
		// The local control plane links envtest, which has no place in the
		// image: it moved to its own binary.
		fmt.Fprintln(os.Stderr, "claiim: the local control plane moved to its own binary: 'claiim-dev up|down' (bin/claiim-dev, built by 'make build'), or 'make dev' / 'make dev-down'")
		os.Exit(2)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "claiim: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "claiim %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
