package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// ClientInfo is a read-only snapshot of one connection. Changing it changes
// nothing in the Helper.
type ClientInfo struct {
	ID       string
	UserID   string
	State    protocol.ClientState
	Rooms    []string
	Metadata map[string]any
	// Encrypted tells whether messages to this client go through the
	// OutboundTransformer.
	Encrypted bool
	// Backpressured tells whether the client's outbox is over
	// BackpressureLimit right now.
	Backpressured bool
	// QueuedBytes is what waits in the client's outbox right now.
	QueuedBytes     int
	RemoteAddr      string
	ConnectedAt     time.Time
	AuthenticatedAt time.Time
	LastActivity    time.Time
}

type frameKind uint8

const (
	frameText    frameKind = iota // a text frame; data is the payload
	frameShared                   // a text frame shared by a fan-out (msg)
	framePending                  // a slot a transform worker fills
	framePing
	framePong // data is the payload of the ping it answers
	frameClose
	frameRaw // data is already framed (the rest of a partial direct write)
)

// frame is one item of a client's outbox.
type frame struct {
	kind    frameKind
	size    int
	data    []byte
	msg     *message
	pending *pendingFrame
	code    int
	reason  string
}

// pendingFrame is filled by a transform worker; data nil means "dropped".
type pendingFrame struct {
	done chan struct{}
	data []byte
}

// client is one connection. Its reader goroutine reads; a writer goroutine,
// started when frames are queued and gone when the queue is empty, writes;
// everything else only enqueues.
type client struct {
	h           *Helper
	id          string
	conn        *websocket.Conn
	netConn     net.Conn        // conn's socket, written directly on the raw path
	rc          syscall.RawConn // netConn's descriptor, for direct writes (nil if not TCP)
	raw         bool            // frames are framed here and written in batches
	remoteAddr  string
	req         *http.Request // the upgrade request, for AuthenticateRequest
	connectedAt time.Time
	ctx         context.Context // cancelled when the connection ends
	cancel      context.CancelFunc

	lastActivity atomic.Int64 // unix nanoseconds

	mu              sync.Mutex
	state           protocol.ClientState
	userID          string
	metadata        map[string]any
	encrypted       bool
	authenticatedAt time.Time
	authTimer       *time.Timer
	authCancel      context.CancelFunc
	// The session expiry (AuthResult.ExpiresAt): its timer first fires for
	// the session-expiring notice, then for the 4006 close.
	expiresAt     time.Time
	sessionTimer  *time.Timer
	sessionGen    uint64 // bumped whenever the timer is re-armed
	expiryNoticed bool   // session-expiring was sent for expiresAt
	refreshing    bool   // a refresh request is being decided
	// recovering holds, per history room being recovered for the client,
	// the live messages that arrived meanwhile (see recoverRoom).
	recovering map[string][]*message
	// floors holds, per recovered room, the last replayed stream id until a
	// newer live message arrives: live copies at or below it are dropped.
	floors        map[string]streamID
	closing       bool
	pending       bool // counted in Helper.pending until authenticated or gone
	queue         []frame
	spare         []frame // the writer's last batch, reused
	queued        int
	backpressured bool
	bpNotice      bool          // the client just went over the limit: log it once
	writing       bool          // a writer goroutine exists (running or parked)
	busy          bool          // someone is writing to the socket right now
	parked        bool          // it waits on wake for frames
	active        bool          // it wrote since the sweeper last looked
	retire        bool          // the sweeper asked it to exit
	writerDone    bool          // the close frame was written, or a write failed
	closeSent     chan struct{} // closed once the close frame is out (or never will be)
	finished      bool          // reading has ended

	// rooms and removed are guarded by h.mu, the index lock.
	rooms       map[string]struct{}
	removed     bool
	indexed     bool   // in the user index and wanting ws:client:{id}
	indexedUser string // the user it was indexed as (for presence entries)

	done chan struct{} // closed when reading has ended
	wake chan struct{} // wakes the parked writer

	// The rate limiter's bucket; only the reader goroutine touches it.
	tokens     float64
	lastRefill time.Time
}

// allow takes a token from the client's bucket, refilled at rate per second
// up to burst.
func (c *client) allow(now time.Time, rate float64, burst int) bool {
	if c.lastRefill.IsZero() {
		c.tokens = float64(burst)
	} else {
		c.tokens = min(float64(burst), c.tokens+now.Sub(c.lastRefill).Seconds()*rate)
	}
	c.lastRefill = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func newClient(h *Helper, id string, conn *websocket.Conn, r *http.Request) *client {
	// Detached from h.ctx's cancellation (it keeps its values): the parent
	// would otherwise hold every connection's context in its children set.
	// finish cancels it when the connection ends, and Shutdown ends them all.
	ctx, cancel := context.WithCancel(context.WithoutCancel(h.ctx))
	now := time.Now()
	c := &client{
		h:           h,
		id:          id,
		conn:        conn,
		remoteAddr:  r.RemoteAddr,
		req:         r,
		connectedAt: now,
		ctx:         ctx,
		cancel:      cancel,
		state:       protocol.StateUnauthorized,
		rooms:       make(map[string]struct{}),
		done:        make(chan struct{}),
		wake:        make(chan struct{}, 1),
	}
	if tcp, ok := conn.UnderlyingConn().(*net.TCPConn); ok {
		c.rc, _ = tcp.SyscallConn()
	}
	c.lastActivity.Store(now.UnixNano())
	return c
}

// writerAction is what a caller must do, after unlocking, for the frames
// it just queued.
type writerAction uint8

const (
	actNone  writerAction = iota
	actStart              // start a writer goroutine
	actWake               // wake the parked writer
)

// startWriterLocked says what the caller must do so that queued frames get
// written; c.mu must be held.
func (c *client) startWriterLocked() writerAction {
	if c.writerDone || c.finished || c.busy || len(c.queue) == 0 {
		// Nothing to write, nobody to write it, or whoever writes now
		// will see the queue when done.
		return actNone
	}
	if !c.writing {
		c.writing = true
		return actStart
	}
	if c.parked {
		c.parked = false
		return actWake
	}
	return actNone
}

// startWriter carries out act. The reader goroutine of a connection that has
// not finished is counted by the Helper, so counting a new writer cannot
// race with Shutdown's wait reaching zero.
func (c *client) startWriter(act writerAction) {
	switch act {
	case actStart:
		c.h.conns.goAlways(c.writeLoop)
	case actWake:
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// retireIfIdle ends the parked writer of a connection that wrote nothing
// since the last call, so that idle connections hold no writer goroutine.
func (c *client) retireIfIdle() {
	c.mu.Lock()
	if c.parked && !c.active {
		c.parked = false
		c.retire = true
		c.mu.Unlock()
		c.startWriter(actWake)
		return
	}
	c.active = false
	c.mu.Unlock()
}

func (c *client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *client) getState() (protocol.ClientState, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.userID
}

// enqueueLocked appends f; c.mu must be held. It applies the backpressure
// policy and reports whether f was queued, whether the client must be
// closed for going over the limit, and whether the caller must start a
// writer (startWriter, after unlocking).
func (c *client) enqueueLocked(f frame) (queued, overLimit bool, start writerAction) {
	limit := c.h.cfg.BackpressureLimit
	if c.queued > 0 && c.queued+f.size > limit {
		if !c.backpressured {
			c.backpressured = true
			c.bpNotice = true // logged by the caller, after unlocking
			c.h.stats.backpressureEvents.Add(1)
		}
		c.h.stats.dropped.Add(1)
		return false, c.h.cfg.CloseOnBackpressureLimit, actNone
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	if obs := c.h.opts.Observer; obs != nil {
		obs.ObserveOutbox(c.queued)
	}
	return true, false, c.startWriterLocked()
}

// sendSystem queues a system frame (error, connected): it is sent in
// plaintext to clients in any state, never through the transformer.
func (c *client) sendSystem(data []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	ok, over, start := c.enqueueLocked(frame{kind: frameText, size: len(data), data: data})
	c.mu.Unlock()
	c.startWriter(start)
	switch {
	case ok:
		c.h.stats.out.Add(1)
	case over:
		c.close(DisconnectBackpressure, true)
	default:
		c.noticeBackpressure()
	}
}

// noticeBackpressure logs, once per episode, that messages are being
// dropped for the client (each drop is counted in Stats.MessagesDropped).
func (c *client) noticeBackpressure() {
	c.mu.Lock()
	notice := c.bpNotice
	c.bpNotice = false
	queued := c.queued
	c.mu.Unlock()
	if notice {
		c.h.log.Warn("client over backpressure limit: dropping messages until its queue drains",
			zap.String("client_id", c.id), zap.Int("queued_bytes", queued))
	}
}

// sendError queues {"event":"error","data":{"message":msg}}, with the id
// of the frame it answers when it had one.
func (c *client) sendError(msg, id string) {
	c.sendSystem(errorFrame(msg, id))
}

// sendControl queues a ping or a pong (raw path only).
func (c *client) sendControl(kind frameKind, data []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, frame{kind: kind, data: data})
	start := c.startWriterLocked()
	c.mu.Unlock()
	c.startWriter(start)
}

// close starts closing the connection with d: nothing more is accepted from
// or queued for the client, and the close frame is written after what is
// already queued (or at once when discard is set). Safe to call many times;
// the first close wins.
func (c *client) close(d Disconnect, discard bool) {
	c.closeAfter(nil, d, discard)
}

// closeAfter is close with a last system frame (an error reply saying why)
// queued in the same locked step as the close frame, so that nothing can
// come between them. last may be nil.
func (c *client) closeAfter(last []byte, d Disconnect, discard bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeSent = make(chan struct{})
	if c.writerDone || c.finished {
		close(c.closeSent)
	}
	if discard {
		c.dropQueueLocked()
	}
	if last != nil {
		// Past the backpressure limit too: it is the client's last frame.
		c.queue = append(c.queue, frame{kind: frameText, size: len(last), data: last})
		c.queued += len(last)
		c.h.stats.out.Add(1)
	}
	c.queue = append(c.queue, frame{kind: frameClose, code: d.Code, reason: d.Reason})
	c.stopTimersLocked()
	cancelAuth := c.authCancel
	c.authCancel = nil
	start := c.startWriterLocked()
	c.mu.Unlock()
	if cancelAuth != nil {
		cancelAuth()
	}
	c.startWriter(start)
}

// stopTimersLocked stops the auth and session timers; c.mu must be held.
func (c *client) stopTimersLocked() {
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	if c.sessionTimer != nil {
		c.sessionTimer.Stop()
		c.sessionTimer = nil
	}
}

func (c *client) dropQueueLocked() {
	for _, f := range c.queue {
		if f.kind != frameClose && f.kind != framePing && f.kind != framePong {
			c.h.stats.dropped.Add(1)
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	c.queued = 0
}

// markWriterDoneLocked records that nothing more will be written.
func (c *client) markWriterDoneLocked() {
	c.writerDone = true
	c.writing, c.parked = false, false
	if c.closeSent != nil {
		select {
		case <-c.closeSent:
		default:
			close(c.closeSent)
		}
	}
}

// writeLoop writes what is queued, batch by batch. Between bursts it parks;
// the sweeper retires it when the connection stays idle (the next frame
// starts a new one). It exits for good when the close frame was written or
// a write failed. One runs at a time per connection.
func (c *client) writeLoop() {
	for {
		c.mu.Lock()
		batch := c.queue
		if len(batch) == 0 || c.busy {
			// Empty, or a direct write holds the socket (it wakes us when
			// it is done and frames wait).
			if len(batch) == 0 && (c.retire || c.writerDone || c.finished) {
				c.writing, c.parked, c.retire = false, false, false
				c.mu.Unlock()
				return
			}
			c.parked = true
			c.mu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.done:
				c.mu.Lock()
				c.writing, c.parked = false, false
				c.mu.Unlock()
				return
			}
		}
		c.queue = c.spare
		c.spare = nil
		c.active, c.retire = true, false
		c.busy = true
		c.mu.Unlock()

		stop, written := c.writeBatch(batch)

		c.mu.Lock()
		c.busy = false
		c.queued -= written
		if c.queued <= 0 {
			c.queued = 0
			c.backpressured = false
		}
		clear(batch)
		if cap(batch) <= maxSpareFrames {
			c.spare = batch[:0]
		}
		if stop {
			c.markWriterDoneLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// maxSpareFrames bounds the batch slice a connection keeps between bursts.
const maxSpareFrames = 64

// writeBatch writes frames in order and reports whether the writer must stop
// and how many queued bytes went out.
func (c *client) writeBatch(batch []frame) (stop bool, written int) {
	if !c.raw {
		for i := range batch {
			written += batch[i].size
			if c.writeFrameGorilla(&batch[i]) {
				return true, written
			}
		}
		return false, written
	}
	w := rawWriter{c: c}
	for i := range batch {
		f := &batch[i]
		written += f.size
		switch f.kind {
		case frameText:
			w.add(opText, f.data)
		case frameShared:
			w.addFramed(f.msg.wire)
		case framePending:
			select {
			case <-f.pending.done:
			default:
				// Not transformed yet: send what precedes it, then wait.
				if w.flush() != nil {
					return true, written
				}
				select {
				case <-f.pending.done:
				case <-c.done:
					return true, written
				}
			}
			if f.pending.data != nil {
				w.add(opText, f.pending.data)
			}
		case framePing:
			w.add(opPing, nil)
		case framePong:
			w.add(opPong, f.data)
		case frameRaw:
			w.addFramed(f.data)
		case frameClose:
			w.add(opClose, websocket.FormatCloseMessage(f.code, f.reason))
			_ = w.flush()
			c.afterClose()
			return true, written
		}
	}
	return w.flush() != nil, written
}

// readMessage reads one message, at most limit bytes of it: a longer one is
// reported as tooBig (and its rest skipped by the next call). The limit is
// enforced here rather than by gorilla, which would write its own close
// frame from the reader goroutine.
func (c *client) readMessage(limit int64) (mt int, data []byte, tooBig bool, err error) {
	mt, r, err := c.conn.NextReader()
	if err != nil {
		return 0, nil, false, err
	}
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return 0, nil, false, err
	}
	if int64(len(data)) > limit {
		return mt, nil, true, nil
	}
	return mt, data, false, nil
}

// waitCloseSent waits at most d for the close frame to be written.
func (c *client) waitCloseSent(d time.Duration) {
	c.mu.Lock()
	ch := c.closeSent
	c.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-c.done:
	}
}

// afterClose gives the peer a moment to answer the close frame, then lets
// the reader fail so that the connection is cleaned up.
func (c *client) afterClose() {
	_ = c.conn.SetReadDeadline(time.Now().Add(c.h.cfg.CloseGrace))
}

// writeFrameGorilla writes one frame through gorilla (used when
// permessage-deflate was negotiated) and reports whether to stop.
func (c *client) writeFrameGorilla(f *frame) bool {
	deadline := time.Now().Add(c.h.cfg.WriteTimeout)
	var err error
	switch f.kind {
	case frameText:
		_ = c.conn.SetWriteDeadline(deadline)
		err = c.conn.WriteMessage(websocket.TextMessage, f.data)
	case frameShared:
		_ = c.conn.SetWriteDeadline(deadline)
		if pm := f.msg.prepared(); pm != nil {
			err = c.conn.WritePreparedMessage(pm)
		} else {
			err = c.conn.WriteMessage(websocket.TextMessage, f.msg.frame)
		}
	case framePending:
		select {
		case <-f.pending.done:
		case <-c.done:
			return true
		}
		if f.pending.data != nil {
			_ = c.conn.SetWriteDeadline(deadline)
			err = c.conn.WriteMessage(websocket.TextMessage, f.pending.data)
		}
	case framePing:
		err = c.conn.WriteControl(websocket.PingMessage, nil, deadline)
	case framePong:
		err = c.conn.WriteControl(websocket.PongMessage, f.data, deadline)
	case frameClose:
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(f.code, f.reason), deadline)
		c.afterClose()
		return true
	}
	if err != nil {
		c.h.logDebug("write failed", c.id, err)
		_ = c.conn.Close()
		return true
	}
	return false
}

func (c *client) info() ClientInfo {
	c.mu.Lock()
	ci := ClientInfo{
		ID:              c.id,
		UserID:          c.userID,
		State:           c.state,
		Encrypted:       c.encrypted,
		Backpressured:   c.backpressured,
		QueuedBytes:     c.queued,
		RemoteAddr:      c.remoteAddr,
		ConnectedAt:     c.connectedAt,
		AuthenticatedAt: c.authenticatedAt,
		LastActivity:    time.Unix(0, c.lastActivity.Load()),
	}
	if c.metadata != nil {
		ci.Metadata = make(map[string]any, len(c.metadata))
		for k, v := range c.metadata {
			ci.Metadata[k] = v
		}
	}
	c.mu.Unlock()
	return ci
}
