//go:build !linux

package redis_test

import "os/exec"

// setPdeathsig does nothing here: only Linux kills a child with its
// parent; the tests' cleanups kill the servers.
func setPdeathsig(*exec.Cmd) {}
