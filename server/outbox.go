package server

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The outbox is the write side of one connection: the frames on their way
// to the client and the only code that writes to its socket. Nothing else
// reads or changes its fields; a method that locks o.mu unlocks it before
// returning (helpers named …Locked are called with it held).
//
// Who writes is one of three things (writeState):
//
//	idle     nobody. Nothing ready waits, except behind a transform slot
//	         that is not filled yet (whoever fills it flushes).
//	writing  a producer — the goroutine that queued a frame: a fan-out,
//	         the reader answering its client, a transform worker — writes
//	         what is ready with writes that never wait for the socket.
//	parked   the writer goroutine holds the socket: a producer found it
//	         full, so this goroutine (started then) waits for it to take
//	         the rest, at most WriteTimeout per write, and writes whatever
//	         else comes until nothing is ready.
//
//	idle    --flush finds a frame ready-->       writing
//	writing --nothing more is ready-->           idle
//	writing --the socket took part or nothing,
//	          or more keeps coming (maxDirectFlights): start the writer--> parked
//	parked  --nothing more is ready-->           idle
//	any     --a write fails, or stop-->          idle (and closed)
//
// How far closing has gone is the other half (closeState):
//
//	open     frames are accepted.
//	closing  the close frame is queued (after what was queued, or after an
//	         error reply in the same step); nothing more is accepted.
//	closed   nothing more is written: the close frame went out, a write
//	         failed, or the reader stopped (stop).
//
//	open --close--> closing --the close frame is out--> closed
//	open, closing --a write fails, or stop--> closed
//
// The queueing methods (push, pushSystem, pushAlways, fill, close,
// closeAfter) never write and never block, so they may be called with the
// client's lock held; flush, called with no lock held, writes. Whoever makes
// a frame ready calls flush, so an idle outbox never has a ready frame for
// long. No lock is held while writing.
type outbox struct {
	env     *outboxEnv
	t       transport
	deflate bool // permessage-deflate was negotiated: data frames are compressed

	mu     sync.Mutex
	ws     writeState
	cs     closeState
	queue  []frame       // frames the writer has not taken yet, in order
	spare  []frame       // a taken batch's slice, for the next queue
	queued int           // bytes counted against the limit: queued and in flight
	flying int           // the part of queued that the writer has taken
	over   bool          // over the limit since the queue was last empty
	closed chan struct{} // made by the close; closed when cs becomes csClosed

	// fl is what the writer took and has not written yet. Only the
	// writer (ws != wsIdle) touches it; the role changes hands under mu.
	fl *flight
}

// writeState says who writes to the socket.
type writeState uint8

const (
	wsIdle    writeState = iota // nobody
	wsWriting                   // a producer, never waiting for the socket
	wsParked                    // the writer goroutine, which may wait for it
)

// closeState says how far closing has gone.
type closeState uint8

const (
	csOpen    closeState = iota // frames are accepted
	csClosing                   // the close frame is queued; nothing more is accepted
	csClosed                    // nothing more is written
)

// outboxEnv is what every outbox of a Helper shares.
type outboxEnv struct {
	limit        int           // BackpressureLimit
	closeOnLimit bool          // CloseOnBackpressureLimit
	writeTimeout time.Duration // how long the writer goroutine waits on one write
	stats        *counters     // dropped and backpressureEvents are counted here
	// spawn starts the writer goroutine. It is called with o.mu held and
	// must not block; the Helper counts the goroutine (its reader is
	// still counted then, so the count cannot have reached zero).
	spawn func(func())
	// observe, if set, is told the bytes waiting when a frame is queued
	// behind others (Observer.ObserveOutbox); called with o.mu held.
	observe func(bytes int)
}

// transport is what an outbox writes through: a socket, or a fake in tests.
// Only the outbox's current writer calls the write methods.
type transport interface {
	// tryWrite writes bufs in order without waiting for the socket and
	// returns how many bytes it took. Fewer than all with a nil error,
	// or errWouldBlock, means the socket is full for now.
	tryWrite(bufs [][]byte) (int, error)
	// write writes all of bufs, waiting for the socket until deadline.
	write(bufs [][]byte, deadline time.Time) error
	// closeSent is told that the close frame is out, so that the reader
	// gives the peer only a short while to answer it.
	closeSent()
	// close closes the connection; the reader sees it end.
	close()
}

// errWouldBlock is tryWrite's "the socket takes nothing more right now".
var errWouldBlock = errors.New("server: socket would block")

type frameKind uint8

const (
	frameText    frameKind = iota // a text frame; data is the payload
	frameShared                   // a fan-out's text frame (msg), shared by every recipient
	framePending                  // a slot a transform worker fills (pending)
	framePing
	framePong  // data is the payload of the ping it answers
	frameClose // data is the close payload: code and reason
	frameRaw   // data is already framed
)

// frame is one item of an outbox.
type frame struct {
	kind    frameKind
	size    int // what the frame counts against BackpressureLimit
	data    []byte
	msg     *message
	pending *pendingFrame
}

// pendingFrame is a frame a transform worker fills (outbox.fill) while it
// already holds its place in the queue.
type pendingFrame struct {
	ready bool   // guarded by the outbox's mu
	data  []byte // the payload; nil once ready means "dropped"
}

// pushResult says what push did with a frame.
type pushResult uint8

const (
	pushQueued       pushResult = iota
	pushRefused                 // the outbox is closing or closed
	pushDropped                 // over BackpressureLimit: dropped and counted
	pushDroppedFirst            // the same, and the first drop since the queue was empty: log it
	pushOverLimit               // over the limit with CloseOnBackpressureLimit: close the client
)

// maxSpareFrames bounds the batch slice an outbox keeps between bursts.
const maxSpareFrames = 64

// maxDirectFlights bounds how many batches a producer writes before it
// leaves the rest to the writer goroutine, so that a fan-out is not held up
// by one connection that others keep feeding.
const maxDirectFlights = 4

func (o *outbox) init(env *outboxEnv, t transport, deflate bool) {
	o.env, o.t, o.deflate = env, t, deflate
}

// push queues an application frame unless the client is over
// BackpressureLimit (bytes queued and in flight; a frame always goes into
// an empty outbox). Drops are counted here; the caller logs and closes as
// the result says. It does not write: call flush.
func (o *outbox) push(f frame) pushResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cs != csOpen {
		return pushRefused
	}
	if o.queued > 0 && o.queued+f.size > o.env.limit {
		o.env.stats.dropped.Add(1)
		first := !o.over
		if first {
			o.over = true
			o.env.stats.backpressureEvents.Add(1)
		}
		switch {
		case o.env.closeOnLimit:
			return pushOverLimit
		case first:
			return pushDroppedFirst
		}
		return pushDropped
	}
	o.queueLocked(f)
	return pushQueued
}

// queueLocked appends f; o.mu must be held.
func (o *outbox) queueLocked(f frame) {
	behind := o.queued > 0 || o.ws != wsIdle
	o.queue = append(o.queue, f)
	o.queued += f.size
	if behind && o.env.observe != nil {
		o.env.observe(o.queued)
	}
}

// pushSystem queues a system frame (an error reply, an ack): plaintext,
// under the same limit as push. It does not write: call flush.
func (o *outbox) pushSystem(data []byte) pushResult {
	return o.push(frame{kind: frameText, size: len(data), data: data})
}

// pushAlways queues a frame the protocol needs whatever the backpressure:
// a ping, a pong, the connected frame. It reports whether the outbox took
// it (it is not closing). It does not write: call flush.
func (o *outbox) pushAlways(f frame) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cs != csOpen {
		return false
	}
	o.queueLocked(f)
	return true
}

// fill completes a transform slot (nil data: the frame is dropped). The
// slot may already be gone with the queue. It does not write: call flush.
func (o *outbox) fill(p *pendingFrame, data []byte) {
	o.mu.Lock()
	p.data, p.ready = data, true
	o.mu.Unlock()
}

// close queues the close frame for d after what is queued — or instead of
// it when discard is set (a frame already partly written is finished
// first) — and refuses everything after it. It reports whether this call
// started closing: the first close wins. It does not write: call flush.
func (o *outbox) close(d Disconnect, discard bool) bool {
	return o.closeAfter(nil, d, discard)
}

// closeAfter is close with a last system frame (an error reply saying
// why, may be nil) queued in the same step as the close frame, so that
// nothing comes between them. The last frame is queued past the limit.
func (o *outbox) closeAfter(last []byte, d Disconnect, discard bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cs != csOpen {
		return false
	}
	o.cs = csClosing
	o.closed = make(chan struct{})
	if discard {
		o.dropLocked()
	}
	if last != nil {
		o.queue = append(o.queue, frame{kind: frameText, size: len(last), data: last})
		o.queued += len(last)
	}
	o.queue = append(o.queue, frame{kind: frameClose, data: websocket.FormatCloseMessage(d.Code, d.Reason)})
	return true
}

// stop is called when the reader has finished: what is queued is dropped,
// nothing more is written, and the connection is closed — which also ends a
// writer goroutine waiting for the socket. A producer writing right now
// finishes its write and then sees the outbox closed.
func (o *outbox) stop() {
	o.mu.Lock()
	o.dropLocked()
	o.setClosedLocked()
	o.mu.Unlock()
	o.t.close()
}

// waitClosed waits at most d for a queued close frame to go out (or for the
// outbox to close otherwise). It returns at once unless the outbox is
// closing.
func (o *outbox) waitClosed(d time.Duration) {
	o.mu.Lock()
	ch, cs := o.closed, o.cs
	o.mu.Unlock()
	if cs != csClosing {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// load reports the bytes queued and in flight, and whether the client is
// over the limit (dropping) since its queue was last empty.
func (o *outbox) load() (queued int, over bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued, o.over
}

// flush writes what is ready from the caller's goroutine, unless someone
// already writes (they will see it). The writes never wait for the socket:
// what it does not take at once is left to the writer goroutine, started
// then. Call it with no lock held.
func (o *outbox) flush() {
	o.mu.Lock()
	if o.ws != wsIdle || o.cs == csClosed || o.readyLocked() == 0 {
		o.mu.Unlock()
		return
	}
	o.ws = wsWriting
	o.mu.Unlock()
	o.drain(false)
}

// drain writes, as the outbox's writer, until nothing is ready. A producer
// (wait false) never waits for the socket and hands over to the writer
// goroutine when it is full; the writer goroutine (wait true) waits.
func (o *outbox) drain(wait bool) {
	for flights := 0; ; flights++ {
		if o.fl == nil && !o.take(wait || flights < maxDirectFlights) {
			return
		}
		var err error
		if wait {
			if err = o.t.write(o.fl.bufs, time.Now().Add(o.env.writeTimeout)); err == nil {
				o.fl.consume(o.fl.remaining())
			}
		} else {
			var n int
			n, err = o.t.tryWrite(o.fl.bufs)
			o.fl.consume(n)
			if errors.Is(err, errWouldBlock) {
				err = nil
			}
		}
		if !o.wrote(err) {
			return
		}
	}
}

// take moves the ready frames at the head of the queue into a new flight
// and reports whether there is one. Without one the writer lets go: the
// outbox becomes idle, or — when more is ready but the producer has
// written enough (more false) — the writer goroutine takes over.
func (o *outbox) take(more bool) bool {
	o.mu.Lock()
	n := 0
	if o.cs != csClosed {
		n = o.readyLocked()
	}
	switch {
	case n == 0:
		o.ws = wsIdle
		o.mu.Unlock()
		return false
	case !more:
		o.parkLocked()
		o.mu.Unlock()
		return false
	}
	batch := o.queue
	o.queue = o.spare[:0]
	o.spare = nil
	if n < len(batch) {
		o.queue = append(o.queue, batch[n:]...)
		clear(batch[n:])
		batch = batch[:n]
	}
	for i := range batch {
		o.flying += batch[i].size
	}
	o.mu.Unlock()

	fl := newFlight()
	for i := range batch {
		fl.add(&batch[i], o.deflate)
	}
	clear(batch)
	fl.batch = batch[:0]
	o.fl = fl
	return true
}

// wrote records how the writer's last write went and reports whether it
// goes on.
func (o *outbox) wrote(err error) bool {
	fl := o.fl
	o.mu.Lock()
	if o.spare == nil && cap(fl.batch) <= maxSpareFrames {
		o.spare = fl.batch
	}
	fl.batch = nil
	switch {
	case err != nil || o.cs == csClosed:
		// The connection is broken (nothing more can be written), or
		// the reader stopped meanwhile and dropped the queue.
		o.dropLocked()
		o.setClosedLocked()
		o.queued, o.flying = 0, 0
		o.ws = wsIdle
		o.fl = nil
		o.mu.Unlock()
		fl.release()
		if err != nil {
			o.t.close()
		}
		return false
	case fl.remaining() > 0:
		// The socket is full (only a write that does not wait stops
		// short): the writer goroutine waits for it.
		o.parkLocked()
		o.mu.Unlock()
		return false
	}
	o.queued -= o.flying
	o.flying = 0
	if o.queued <= 0 {
		o.queued = 0
		o.over = false
	}
	o.fl = nil
	if fl.close {
		o.setClosedLocked()
		o.ws = wsIdle
		o.mu.Unlock()
		fl.release()
		o.t.closeSent()
		return false
	}
	o.mu.Unlock()
	fl.release()
	return true
}

// parkLocked hands the writer role to a new writer goroutine; o.mu must be
// held.
func (o *outbox) parkLocked() {
	o.ws = wsParked
	o.env.spawn(o.writer)
}

// writer is the writer goroutine.
func (o *outbox) writer() { o.drain(true) }

// readyLocked counts the frames at the head of the queue that can be
// written now: all of them up to a transform slot not filled yet. o.mu must
// be held.
func (o *outbox) readyLocked() int {
	for i := range o.queue {
		if p := o.queue[i].pending; p != nil && !p.ready {
			return i
		}
	}
	return len(o.queue)
}

// dropLocked empties the queue, counting the application and system frames
// in it as dropped; o.mu must be held. What is in flight stays: a frame
// partly on the wire must be finished for the stream to stay valid.
func (o *outbox) dropLocked() {
	for i := range o.queue {
		switch o.queue[i].kind {
		case frameClose, framePing, framePong, frameRaw:
		default:
			o.env.stats.dropped.Add(1)
		}
	}
	clear(o.queue)
	o.queue = o.queue[:0]
	o.queued = o.flying
}

// setClosedLocked moves to csClosed and wakes waitClosed; o.mu must be
// held.
func (o *outbox) setClosedLocked() {
	if o.cs == csClosing {
		close(o.closed)
	}
	o.cs = csClosed
}
