//go:build !linux

package server

import "syscall"

// writevNow is not available here: direct writes are skipped (EAGAIN sends
// every frame to the writer).
func writevNow(syscall.RawConn, []byte, []byte) (int, error) { return 0, syscall.EAGAIN }
