// Command pause holds a pod sandbox's namespaces for containerd, as Kubernetes' pause image
// does (build/pause/linux/pause.c): it waits for SIGINT or SIGTERM, and as the sandbox's
// PID 1 it reaps the children that are orphaned into it. No image can be pulled on the
// tests' cluster, so the tests import this static binary as the sandbox image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
