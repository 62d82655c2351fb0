//go:build !linux

package server_test

import "os/exec"

// dieWithParent has no equivalent here: a crashed test may leave its child
// running until it notices its stdout closed.
func dieWithParent(*exec.Cmd) {}
