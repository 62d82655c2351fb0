//go:build linux

package redistest

import "syscall"

// sysProcAttr asks the kernel to kill redis-server when the test binary dies
// without running its cleanups (a test timeout panics and exits at once), so
// no orphan keeps a port or a temp dir busy.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
