package server

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/internal/wsframe"
)

// The event-driven read side (Linux; see poll_linux.go for epoll). A
// connection on it has no goroutine and no read buffer while it is idle:
// one of the Helper's pollers waits for its socket to become readable, and
// only then does a goroutine, with a buffer from a pool, read what arrived,
// parse it with a wsframe.Reader and handle the messages, until the socket
// is empty again. Writes go through the outbox as on the portable path.
//
// Who reads is one of three things (pcState):
//
//	armed  nobody: the poller starts a goroutine at the next readiness
//	       event.
//	busy   one goroutine: started by the poller for a readiness event,
//	       or by hangup, which found the connection armed.
//	done   the connection ended (end ran).
//
//	armed --readable (poller) or hangup--> busy
//	busy  --the socket is empty: park-->   armed
//	busy  --EOF, read error, close frame, hangup seen--> done
//
// Every change of owner is a compare-and-swap, so exactly one goroutine
// reads at a time and exactly one ends the connection. The socket is
// registered edge-triggered, once: an event that finds the connection busy
// sets more, and the busy goroutine reads again before it parks, so no
// readiness is lost and no system call re-arms the socket.

// pcState says who reads a polled connection.
type pcState = uint32

const (
	pcArmed pcState = iota
	pcBusy
	pcDone
)

// pollConn is a connection on the event-driven read side.
type pollConn struct {
	c     *client
	p     *poller
	token uint64 // the poller's key for it (epoll data)

	state atomic.Uint32
	more  atomic.Bool // readiness came while busy: read again before parking
	// peerDone: the peer shut its side (or the socket failed). Its end of
	// input may have come in the same event as the last data, so from
	// then on the owner reads until it sees it, never parking on a short
	// read.
	peerDone atomic.Bool
	hang     atomic.Bool // hangup was asked for: the owner ends the connection
	// lastRead is when the last frame arrived (unix nanoseconds); the
	// sweeper hangs up connections silent for IdleTimeout.
	lastRead atomic.Int64
	// grace is the CloseGrace timer started when the close frame went
	// out; end stops it.
	grace atomic.Pointer[time.Timer]

	// Only the busy goroutine touches these.
	rd     wsframe.Reader
	failed bool // a protocol error was answered: the rest is discarded
}

// readBuf is what a busy goroutine borrows while it reads: the buffer and
// the system-call operations bound to it, so that reading allocates nothing.
type readBuf struct {
	b  []byte
	op pollOp
}

// readBufSize is the size of a pooled read buffer.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any {
	rb := &readBuf{b: make([]byte, readBufSize)}
	rb.op.init()
	return rb
}}

// serve reads and handles what arrived, as the connection's busy goroutine,
// until the socket is empty (then the connection is armed again) or the
// connection ends.
func (pc *pollConn) serve() {
	rb := readBufs.Get().(*readBuf)
	defer readBufs.Put(rb)
	for {
		if pc.hang.Load() {
			pc.end(errHangup)
			return
		}
		pc.more.Store(false)
		n, err := rb.op.read(pc.c.sock.rc, rb.b)
		switch {
		case errors.Is(err, errWouldBlock):
			if pc.park() {
				return
			}
			continue
		case err != nil:
			pc.end(err)
			return
		}
		if !pc.consume(rb.b[:n]) {
			pc.end(nil)
			return
		}
		// A short read emptied the socket: what arrives later is a new
		// edge, so park without paying a read that says EAGAIN — unless
		// the peer has shut its side, whose end of input no new edge
		// would announce.
		if n < len(rb.b) && !pc.peerDone.Load() && pc.park() {
			return
		}
	}
}

// errHangup is why a connection ended when hangup ended it.
var errHangup = errors.New("server: connection dropped")

// park hands the connection back to its poller. It reports false when the
// caller is still the owner and must go on: readiness or a hangup came
// meanwhile.
func (pc *pollConn) park() bool {
	pc.state.Store(pcArmed)
	if (pc.more.Load() || pc.hang.Load()) && pc.state.CompareAndSwap(pcArmed, pcBusy) {
		return false
	}
	return true
}

// ready is the poller's readiness event: an armed connection gets a
// goroutine; a busy one is told to read again.
func (pc *pollConn) ready() {
	pc.more.Store(true)
	for {
		switch pc.state.Load() {
		case pcArmed:
			if pc.state.CompareAndSwap(pcArmed, pcBusy) {
				pc.p.dispatch(pc)
				return
			}
		case pcBusy:
			// The owner sees more when it parks (it stores armed, then
			// loads more; this stored more, then loaded busy).
			return
		default:
			return
		}
	}
}

// hangup ends the connection without a close handshake (the socket is
// closed): the idle timeout, the close grace, a failed write, Shutdown.
// Safe to call many times and from any goroutine.
func (pc *pollConn) hangup() {
	pc.hang.Store(true)
	pc.c.sock.closeConn()
	if pc.state.CompareAndSwap(pcArmed, pcBusy) {
		// Nobody reads: the closed socket will never become readable,
		// so end it here (in a goroutine: finish runs callbacks).
		go pc.end(errHangup)
	}
}

// closeSent starts the CloseGrace timer when the close frame went out: the
// peer has that long to answer before the socket is dropped.
func (pc *pollConn) closeSent() {
	t := time.AfterFunc(pc.c.h.cfg.CloseGrace, pc.hangup)
	if old := pc.grace.Swap(t); old != nil {
		old.Stop()
	}
}

// end runs once, by the owner, when the connection is over.
func (pc *pollConn) end(err error) {
	pc.state.Store(pcDone)
	if t := pc.grace.Swap(nil); t != nil {
		t.Stop()
	}
	h := pc.c.h
	if err != nil {
		h.logDebug("read ended", pc.c.id, err)
	}
	pc.p.remove(pc.token)
	h.finish(pc.c)
	h.conns.leave()
}

// consume handles the events in p and reports whether the connection goes
// on: false once the peer's close was answered.
func (pc *pollConn) consume(p []byte) bool {
	c := pc.c
	for len(p) > 0 && !pc.failed {
		n, ev, err := pc.rd.Next(p)
		p = p[n:]
		if err != nil {
			pc.fail(err)
			return true
		}
		switch ev.Kind {
		case wsframe.KindNone:
			return true
		case wsframe.KindPing:
			pc.touch()
			c.sendControl(framePong, bytes.Clone(ev.Payload))
		case wsframe.KindPong:
			pc.touch()
		case wsframe.KindClose:
			code := ev.Code
			if code == wsframe.CloseNoStatus {
				code = wsframe.CloseNormal
			}
			c.close(Disconnect{Code: code}, true)
			c.out.waitClosed(closeEchoWait)
			return false
		default: // text or binary, checked for UTF-8 by the reader
			pc.touch()
			c.h.onMessage(c, bytes.Clone(ev.Payload))
		}
	}
	return true
}

// touch records that a frame arrived.
func (pc *pollConn) touch() { pc.lastRead.Store(time.Now().UnixNano()) }

// fail answers a protocol error with its close code; what the client sends
// afterwards is discarded until it closes or CloseGrace has passed.
func (pc *pollConn) fail(err error) {
	pc.failed = true
	c := pc.c
	var pe *wsframe.ProtocolError
	switch {
	case errors.As(err, &pe) && pe.Code == wsframe.CloseMessageTooBig:
		c.h.sampled(sampleOversize, "client closed: frame over MaxPayloadLength", zap.String("client_id", c.id))
		c.close(DisconnectTooBig, true)
	case errors.As(err, &pe) && pe.Code == wsframe.CloseInvalidPayload:
		c.close(DisconnectInvalidUTF8, false)
	case errors.As(err, &pe):
		c.h.logDebug("protocol error", c.id, err)
		c.close(Disconnect{Code: pe.Code, Reason: pe.Reason}, true)
	default: // ErrClosed: nothing may follow a close frame
		c.h.logDebug("frame after close", c.id, err)
	}
}

// errIdle is logged for a connection silent for IdleTimeout.
var errIdle = errors.New("server: nothing received for IdleTimeout")

// hangUpIdle hangs up polled connections from which nothing arrived since
// limit (unix nanoseconds): IdleTimeout, which the portable path enforces
// with read deadlines.
func (h *Helper) hangUpIdle(limit int64) {
	for _, pc := range h.polls.idleSince(limit) {
		h.logDebug("idle timeout", pc.c.id, errIdle)
		pc.hangup()
	}
}

// idleSweepEvery is how often polled connections are checked for
// IdleTimeout: an eighth of it, between 10ms and 1s, so that a connection
// ends at most that much after its timeout.
func idleSweepEvery(idle time.Duration) time.Duration {
	return min(max(idle/8, 10*time.Millisecond), time.Second)
}

// errEOF is a read's end of input.
var errEOF = io.EOF

// errPollUnsupported is newPollSet's answer where there is no epoll.
var errPollUnsupported = errors.New("server: no event-driven reads on this platform")

// defaultPollers is Config.Pollers' default.
const defaultPollers = 1

// maxParked bounds the idle workers a poller keeps per GOMAXPROCS.
const maxParked = 4

// parkedPerPoller is how many idle workers one poller keeps at most: an
// idle server holds Pollers times this many goroutines besides its own.
func parkedPerPoller() int { return maxParked * runtime.GOMAXPROCS(0) }
