package server

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Kinds of log lines that a client can cause at will, and so are sampled:
// an operator sees that they happen and how often, a client cannot flood
// the log.
type sampleKind uint8

const (
	sampleAuthFailure sampleKind = iota // rejected authenticate, failed handshake, user full
	sampleAuthTimeout
	sampleRateLimit
	sampleOversize
	sampleOrigin
	sampleHandlerError // callback errors (message handler and the others)
	sampleKinds
)

var sampleNames = [sampleKinds]string{
	sampleAuthFailure:  "auth failure",
	sampleAuthTimeout:  "auth timeout",
	sampleRateLimit:    "rate limit",
	sampleOversize:     "oversize frame",
	sampleOrigin:       "origin refused",
	sampleHandlerError: "callback error",
}

// sampler lets the first burst lines of each kind through per interval and
// counts the rest; flush writes one summary line per kind that lost some.
type sampler struct {
	burst int

	mu         sync.Mutex
	written    [sampleKinds]int
	suppressed [sampleKinds]int
}

// allow reports whether a line of kind k may be written now.
func (s *sampler) allow(k sampleKind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written[k] < s.burst {
		s.written[k]++
		return true
	}
	s.suppressed[k]++
	return false
}

// flush starts a new interval and returns what was suppressed in the last.
func (s *sampler) flush() (suppressed [sampleKinds]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	suppressed = s.suppressed
	s.written = [sampleKinds]int{}
	s.suppressed = [sampleKinds]int{}
	return suppressed
}

// sampled writes an info line of kind k unless this interval's burst of
// that kind is spent (then it is counted for the summary line).
func (h *Helper) sampled(k sampleKind, msg string, fields ...zap.Field) {
	h.sampledAt(zapcore.InfoLevel, k, msg, fields...)
}

func (h *Helper) sampledAt(level zapcore.Level, k sampleKind, msg string, fields ...zap.Field) {
	if !h.log.Core().Enabled(level) {
		return
	}
	if !h.samples.allow(k) {
		h.stats.logSuppressed.Add(1)
		return
	}
	if ce := h.log.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}

// flushSamples writes one summary line per kind of which lines were left
// out in the interval that just ended. The sweeper calls it every
// LogSampleInterval.
func (h *Helper) flushSamples(interval time.Duration) {
	for k, n := range h.samples.flush() {
		if n > 0 {
			h.log.Info("similar log lines suppressed",
				zap.String("kind", sampleNames[k]), zap.Int("suppressed", n), zap.Duration("interval", interval))
		}
	}
}
