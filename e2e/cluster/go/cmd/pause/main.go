// Command pause is the pod sandbox's process: it holds the pod's namespaces open, reaps
// orphaned children (it is PID 1 when the pod shares a process namespace), and exits on
// SIGINT/SIGTERM. It does what registry.k8s.io/pause does, built here because this
// machine reaches no image registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
