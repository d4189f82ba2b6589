//go:build !linux

package resolvertest

import "os/exec"

// DieWithParent does nothing here: only Linux kills a child when its
// parent dies; the tests' cleanups stop the servers they started.
func DieWithParent(*exec.Cmd) {}
