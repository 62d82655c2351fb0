package server

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

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
	frameBytes    frameKind = iota // a complete text frame
	framePrepared                  // a frame shared by a fan-out
	framePending                   // a slot a transform worker fills
	framePing
	frameClose
)

// frame is one item of a client's outbox.
type frame struct {
	kind    frameKind
	size    int
	data    []byte
	pm      *websocket.PreparedMessage
	pending *pendingFrame
	code    int
	reason  string
}

// pendingFrame is filled by a transform worker; data nil means "dropped".
type pendingFrame struct {
	done chan struct{}
	data []byte
}

// client is one connection. The handler goroutine reads; the writer
// goroutine writes; everything else only enqueues.
type client struct {
	h           *Helper
	id          string
	conn        *websocket.Conn
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
	closing         bool
	pending         bool // counted in Helper.pending until authenticated or gone
	queue           []frame
	queued          int
	backpressured   bool

	// rooms and removed are guarded by h.mu, the index lock.
	rooms   map[string]struct{}
	removed bool
	indexed bool // in the user index and wanting ws:client:{id}

	wake chan struct{}
	done chan struct{} // closed when reading has ended

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
	ctx, cancel := context.WithCancel(h.ctx)
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
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	c.lastActivity.Store(now.UnixNano())
	return c
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
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
// policy and reports whether f was queued and whether the client must be
// closed for going over the limit.
func (c *client) enqueueLocked(f frame) (queued, overLimit bool) {
	limit := c.h.cfg.BackpressureLimit
	if c.queued > 0 && c.queued+f.size > limit {
		if !c.backpressured {
			c.backpressured = true
			c.h.stats.backpressureEvents.Add(1)
		}
		c.h.stats.dropped.Add(1)
		return false, c.h.cfg.CloseOnBackpressureLimit
	}
	c.queue = append(c.queue, f)
	c.queued += f.size
	return true, false
}

// sendSystem queues a system frame (error, connected): it is sent in
// plaintext to clients in any state, never through the transformer.
func (c *client) sendSystem(data []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	ok, over := c.enqueueLocked(frame{kind: frameBytes, size: len(data), data: data})
	c.mu.Unlock()
	if ok {
		c.h.stats.out.Add(1)
		c.signal()
	} else if over {
		c.close(protocol.ClosePolicyViolation, protocol.ReasonBackpressure, true)
	}
}

// sendError queues {"event":"error","data":{"message":msg}}.
func (c *client) sendError(msg string) {
	c.sendSystem(errorFrame(msg))
}

// close starts closing the connection: nothing more is accepted from or
// queued for the client, and the close frame is written after what is
// already queued (or at once when discard is set). Safe to call many times.
func (c *client) close(code int, reason string, discard bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if discard {
		c.dropQueueLocked()
	}
	c.queue = append(c.queue, frame{kind: frameClose, code: code, reason: reason})
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	cancelAuth := c.authCancel
	c.authCancel = nil
	c.mu.Unlock()
	if cancelAuth != nil {
		cancelAuth()
	}
	c.signal()
}

func (c *client) dropQueueLocked() {
	for _, f := range c.queue {
		if f.kind != frameClose && f.kind != framePing {
			c.h.stats.dropped.Add(1)
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	c.queued = 0
}

// writeLoop is the connection's only writer. It exits when the close frame
// was written, a write fails, or reading has ended. Queued frames are taken
// in batches so that a busy client costs one lock round trip per batch.
func (c *client) writeLoop() {
	var spare []frame
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = spare
			c.mu.Unlock()
			if len(batch) == 0 {
				spare = batch
				break
			}
			for i := range batch {
				stop := c.writeFrame(&batch[i])
				batch[i] = frame{}
				if stop {
					return
				}
			}
			spare = batch[:0]
			if cap(spare) > maxSpareFrames {
				spare = nil
			}
		}
	}
}

// maxSpareFrames bounds the batch slice a writer keeps between bursts.
const maxSpareFrames = 1024

// writeFrame writes one frame and reports whether the writer must stop.
func (c *client) writeFrame(f *frame) bool {
	deadline := time.Now().Add(c.h.cfg.WriteTimeout)
	var err error
	switch f.kind {
	case frameBytes:
		_ = c.conn.SetWriteDeadline(deadline)
		err = c.conn.WriteMessage(websocket.TextMessage, f.data)
	case framePrepared:
		_ = c.conn.SetWriteDeadline(deadline)
		err = c.conn.WritePreparedMessage(f.pm)
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
	case frameClose:
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(f.code, f.reason), deadline)
		// Give the peer a moment to answer the close, then let the
		// reader fail so the handler goroutine cleans up.
		_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
		return true
	}
	c.mu.Lock()
	c.queued -= f.size
	if c.queued <= 0 {
		c.queued = 0
		c.backpressured = false
	}
	c.mu.Unlock()
	if err != nil {
		c.h.logDebug("write failed", c.id, err)
		_ = c.conn.Close()
		return true
	}
	return false
}

// closeGrace is how long a closed connection waits for the peer's close
// frame before the socket is dropped.
const closeGrace = 2 * time.Second

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
