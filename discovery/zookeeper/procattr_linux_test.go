package zookeeper_test

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server when the test process dies
// (a test timeout's panic, a kill), so that no JVM outlives its tests.
// (Strictly, when the thread that started it ends; the runtime's threads
// end with the process unless a goroutine locked to one returns.)
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
