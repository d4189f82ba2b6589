//go:build !linux

package zookeeper_test

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child when its
// parent dies; stop kills the server at the tests' end.
func dieWithParent(*exec.Cmd) {}
