package server

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
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

// client is one connection. Its reader goroutine reads; its outbox writes
// (from whichever goroutine queues a frame, or from a writer goroutine
// while the socket is full); everything else only queues.
type client struct {
	h           *Helper
	id          string
	conn        *websocket.Conn
	sock        socket // the outbox's transport
	out         outbox
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
	floors  map[string]streamID
	closing bool // closed or closing: nothing more is accepted or sent
	pending bool // counted in Helper.pending until authenticated or gone

	// rooms and removed are guarded by h.mu, the index lock.
	rooms       roomSet
	removed     bool
	indexed     bool   // in the user index and wanting ws:client:{id}
	indexedUser string // the user it was indexed as (for presence entries)

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

func newClient(h *Helper, id string, conn *websocket.Conn, sc *sockConn, r *http.Request) *client {
	// Detached from h.ctx's cancellation (it keeps its values): the parent
	// would otherwise hold every connection's context in its children set.
	// finish cancels it when the connection ends, and Shutdown ends them all.
	ctx, cancel := context.WithCancel(context.WithoutCancel(h.ctx))
	now := time.Now()
	c := &client{
		h:           h,
		id:          id,
		conn:        conn,
		sock:        newSocket(h, id, sc.Conn),
		remoteAddr:  r.RemoteAddr,
		req:         r,
		connectedAt: now,
		ctx:         ctx,
		cancel:      cancel,
		state:       protocol.StateUnauthorized,
	}
	c.out.init(&h.outEnv, &c.sock, sc.deflate)
	c.lastActivity.Store(now.UnixNano())
	return c
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

// sendSystem sends a system frame (error, ack, expiry notice): in
// plaintext to clients in any state, never through the transformer, under
// the backpressure limit.
func (c *client) sendSystem(data []byte) {
	r := c.out.pushSystem(data)
	c.out.flush()
	c.pushed(r)
}

// pushed acts on a push's result, after the caller has unlocked: it counts
// the frame out, or logs and closes as the backpressure policy says.
func (c *client) pushed(r pushResult) {
	switch r {
	case pushQueued:
		c.h.stats.out.Add(1)
	case pushDroppedFirst:
		queued, _ := c.out.load()
		c.h.log.Warn("client over backpressure limit: dropping messages until its queue drains",
			zap.String("client_id", c.id), zap.Int("queued_bytes", queued))
	case pushOverLimit:
		c.h.log.Warn("client over backpressure limit: closing", zap.String("client_id", c.id))
		c.close(DisconnectBackpressure, true)
	}
}

// sendError queues {"event":"error","data":{"message":msg}}, with the id
// of the frame it answers when it had one.
func (c *client) sendError(msg, id string) {
	c.sendSystem(errorFrame(msg, id))
}

// sendControl sends a ping, or a pong answering the peer's ping.
func (c *client) sendControl(kind frameKind, data []byte) {
	if c.out.pushAlways(frame{kind: kind, data: data}) {
		c.out.flush()
	}
}

// close starts closing the connection with d: nothing more is accepted from
// or queued for the client, and the close frame is written after what is
// already queued (or at once when discard is set). Safe to call many times;
// the first close wins.
func (c *client) close(d Disconnect, discard bool) {
	c.closeAfter(nil, d, discard)
}

// closeAfter is close with a last system frame (an error reply saying why)
// queued in the same step as the close frame, so that nothing can come
// between them. last may be nil.
func (c *client) closeAfter(last []byte, d Disconnect, discard bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.stopTimersLocked()
	cancelAuth := c.authCancel
	c.authCancel = nil
	c.mu.Unlock()
	if cancelAuth != nil {
		cancelAuth()
	}
	if c.out.closeAfter(last, d, discard) && last != nil {
		c.h.stats.out.Add(1)
	}
	c.out.flush()
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

// readMessage reads one message, at most limit bytes of it: a longer one is
// reported as tooBig (and its rest skipped by the next call). The limit is
// enforced here rather than by gorilla, which would send its own close
// frame.
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

func (c *client) info() ClientInfo {
	c.mu.Lock()
	ci := ClientInfo{
		ID:              c.id,
		UserID:          c.userID,
		State:           c.state,
		Encrypted:       c.encrypted,
		RemoteAddr:      c.remoteAddr,
		ConnectedAt:     c.connectedAt,
		AuthenticatedAt: c.authenticatedAt,
		LastActivity:    time.Unix(0, c.lastActivity.Load()),
	}
	ci.QueuedBytes, ci.Backpressured = c.out.load()
	if c.metadata != nil {
		ci.Metadata = make(map[string]any, len(c.metadata))
		for k, v := range c.metadata {
			ci.Metadata[k] = v
		}
	}
	c.mu.Unlock()
	return ci
}
