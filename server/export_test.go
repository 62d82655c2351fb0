package server

import "time"

// SetWriterIdle shortens the writer retirement period for a test.
func SetWriterIdle(d time.Duration) (restore func()) {
	old := writerIdle
	writerIdle = d
	return func() { writerIdle = old }
}
