//go:build !linux

package server

import "syscall"

// writeNow is not available here: direct writes are skipped (EAGAIN sends
// every frame to the writer).
func writeNow(syscall.RawConn, []byte) (int, error) { return 0, syscall.EAGAIN }
