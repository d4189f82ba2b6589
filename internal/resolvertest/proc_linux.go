package resolvertest

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd's process when the test process
// dies (a test timeout's panic, a kill), so that no server a test started
// outlives its tests. (Strictly, when the thread that started it ends;
// the runtime's threads end with the process unless a goroutine locked to
// one returns.)
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
