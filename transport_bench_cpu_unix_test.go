//go:build unix

package lb_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used.
// On a shared machine it is steadier than the wall clock: time the
// process waits for a CPU does not count.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
