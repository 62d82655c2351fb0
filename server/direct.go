package server

import (
	"errors"
	"syscall"
)

// directMax is the largest number of recipients a send writes to directly
// from the sender's goroutine. Replies and sends to one user's sessions go
// out at once, without waking a writer goroutine; larger fan-outs are left
// to the writers, which run in parallel on several cores.
const directMax = 4

// tryDirect writes one frame straight to the socket, from the caller's
// goroutine, when the client's queue is empty and nobody is writing. The
// write never waits: whatever the socket does not take at once (EAGAIN, a
// partial write) is queued for the writer. It reports whether the frame was
// taken care of (written or queued) and what to do about the writer.
func (c *client) tryDirect(payload []byte, size int) (handled bool, act writerAction) {
	// c.mu held on entry; released on return when handled.
	if !c.raw || c.rc == nil || c.busy || len(c.queue) > 0 || c.writerDone || c.finished {
		return false, actNone
	}
	c.busy = true
	c.mu.Unlock()

	var hdr [10]byte
	h := appendHeader(hdr[:0], opText, len(payload))
	n, err := writevNow(c.rc, h, payload)

	c.mu.Lock()
	c.busy = false
	total := len(h) + len(payload)
	switch {
	case err != nil && !errors.Is(err, syscall.EAGAIN):
		// The connection is broken: the reader will see it and clean up.
		c.writerDone = true
		c.mu.Unlock()
		c.h.logDebug("write failed", c.id, err)
		_ = c.conn.Close()
		return true, actNone
	case n < total:
		rest := make([]byte, 0, total-n)
		if n < len(h) {
			rest = append(rest, h[n:]...)
			rest = append(rest, payload...)
		} else {
			rest = append(rest, payload[n-len(h):]...)
		}
		c.queue = append(c.queue, frame{kind: frameRaw, size: size, data: rest})
		c.queued += size
	}
	act = c.startWriterLocked()
	c.mu.Unlock()
	return true, act
}
