//go:build !linux || 386

package server

// tryWrite is not available here (linux/386 has no sendto system call of
// its own): every frame goes to the writer goroutine.
func (s *socket) tryWrite([][]byte) (int, error) { return 0, errWouldBlock }
