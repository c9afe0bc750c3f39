// Command pause is the sandbox ("pause") container of the local cluster's
// pods: it holds the pod's namespaces open until the kubelet stops it.
// Unlike upstream's pause it reaps no zombies, which matters only with a
// shared PID namespace, which our pods do not ask for.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
