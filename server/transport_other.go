//go:build !linux

package server

// tryWrite is not available here: every frame goes to the writer goroutine.
func (s *socket) tryWrite([][]byte) (int, error) { return 0, errWouldBlock }
