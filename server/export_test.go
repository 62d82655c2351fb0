package server

import "time"

// SetWriterIdle used to shorten the period after which an idle
// connection's writer goroutine was retired. Writer goroutines now exist
// only while a socket is full and end when their outbox is empty, so there
// is nothing to shorten; it is kept for the tests that still call it.
func SetWriterIdle(time.Duration) (restore func()) { return func() {} }

// PollWorkersMax is how many idle poller workers a Helper with cfg may keep
// (zero where connections are not polled).
func PollWorkersMax(cfg Config) int {
	cfg = cfg.withDefaults()
	if !pollSupported || cfg.Pollers == Off {
		return 0
	}
	return cfg.Pollers * parkedPerPoller()
}
