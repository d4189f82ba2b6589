//go:build unix

package lbotel_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used:
// steadier than the wall clock on a shared machine.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
