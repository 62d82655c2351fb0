//go:build !linux

package redistest

import "syscall"

// sysProcAttr has no parent-death signal to offer outside Linux; cleanups
// alone stop the servers there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
