package server

import (
	"errors"
	"os"
	"syscall"
)

// directMax is the largest number of recipients a send writes to directly
// from the sender's goroutine. Replies and sends to one user's sessions go
// out at once, without waking a writer goroutine; larger fan-outs are left
// to the writers, which run in parallel on several cores.
const directMax = 4

// tryDirect writes one whole frame (wire) straight to the socket, from the caller's
// goroutine, when the client's queue is empty and nobody is writing. The
// write never waits: whatever the socket does not take at once (EAGAIN, a
// partial write) is queued for the writer. It reports whether the frame was
// taken care of (written or queued) and what to do about the writer.
func (c *client) tryDirect(wire []byte, size int) (handled bool, act writerAction) {
	// c.mu held on entry; released on return when handled.
	if !c.raw || c.rc == nil || c.busy || len(c.queue) > 0 || c.writerDone || c.finished {
		return false, actNone
	}
	c.busy = true
	c.mu.Unlock()

	n, err := writeNow(c.rc, wire)

	c.mu.Lock()
	c.busy = false
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The writer's last deadline has passed (the connection was quiet
		// for WriteTimeout): leave the frame to the writer, which sets a
		// new one.
		c.queue = append(c.queue, frame{kind: frameRaw, size: size, data: wire})
		c.queued += size
	case err != nil && !errors.Is(err, syscall.EAGAIN):
		// The connection is broken: the reader will see it and clean up.
		c.writerDone = true
		c.mu.Unlock()
		c.h.logDebug("write failed", c.id, err)
		_ = c.conn.Close()
		return true, actNone
	case n < len(wire):
		// wire is shared and never changed: the rest can point into it.
		c.queue = append(c.queue, frame{kind: frameRaw, size: size, data: wire[n:]})
		c.queued += size
	}
	act = c.startWriterLocked()
	c.mu.Unlock()
	return true, act
}
