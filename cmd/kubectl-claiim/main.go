// Command kubectl-claiim is the `kubectl claiim` plugin: PIM, agents,
// explain and Chron for people, with their own kubeconfig credentials.
// Put it on PATH and kubectl finds it. The commands live in
// internal/kubectlclaiim.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/claiim/claiim-operator/internal/kubectlclaiim"
)

func main() {
	os.Exit(kubectlclaiim.Execute(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
