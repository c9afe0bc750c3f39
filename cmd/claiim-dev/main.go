// Command claiim-dev starts and stops the local control plane of `make dev`
// (internal/devenv). It is a development tool, never shipped in the image:
// it links envtest and the test helpers, which the production claiim binary
// must not.
package main

import (
	"fmt"
	"os"

	"github.com/claiim/claiim-operator/internal/devenv"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help") {
		fmt.Print(devenv.Usage)
		return
	}
	if err := devenv.Run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "claiim-dev: %v\n", err)
		os.Exit(1)
	}
}
