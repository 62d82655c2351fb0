package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// closeAbnormal is RFC 6455's code for a connection lost without a close
// frame; it never travels on the wire.
const closeAbnormal = 1006

// heartbeatFrame is sent every Options.HeartbeatInterval.
var heartbeatFrame = []byte(`{"event":"heartbeat"}`)

// conn is one WebSocket connection of a Client: the reader goroutine reads
// and routes every frame; the writer goroutine is the only one that writes
// (frames from the send queue, heartbeats, the closing frame). It lives
// from "connected" until the socket ends; a reconnect makes a new one.
type conn struct {
	c  *Client
	ws *websocket.Conn

	out      chan []byte     // frames for the writer; bounded by Options.SendQueue
	closeReq chan closeFrame // capacity 1: the close the writer sends, then stops
	done     chan struct{}   // closed when the reader has returned
	dropping atomic.Bool     // we asked to close: frames still read are discarded
	wdone    chan struct{}   // closed when the writer has returned
	session  atomic.Pointer[Connected]
	// key seals and opens the frames of an encrypted connection (nil:
	// plaintext). handshake sets it before the connection is installed
	// and started; it never changes after, so it is read without a lock.
	key *ecdh.Key
	// readMoved is when the reader last moved the read deadline
	// (extendRead); only the reader touches it.
	readMoved time.Time

	mu      sync.Mutex
	pending map[string]chan Frame // request id → where its answer goes
	cause   error                 // why the connection ended; the first reason wins
	lastErr string                // the last "error" message that answered no request
}

type closeFrame struct {
	code   int
	reason string
}

func newConn(c *Client, ws *websocket.Conn) *conn {
	return &conn{c: c, ws: ws,
		out:      make(chan []byte, c.opts.SendQueue),
		closeReq: make(chan closeFrame, 1),
		done:     make(chan struct{}),
		wdone:    make(chan struct{}),
		pending:  make(map[string]chan Frame),
	}
}

// handshake sends authenticate with data (JSON, nil for none) and waits for
// "connected". With priv (Options.Encrypt) it derives the connection's key
// from "connected", or refuses the connection: it sends 1000 "client
// refused handshake" and returns an error wrapping ErrEncryptionHandshake.
// It runs before the reader and writer exist, on the goroutine that
// connects.
func (cn *conn) handshake(ctx context.Context, data json.RawMessage, priv *ecdh.PrivateKey) (Connected, error) {
	b, _ := json.Marshal(protocol.Message{Event: protocol.EventAuthenticate, Data: data})
	deadline, _ := ctx.Deadline()
	_ = cn.ws.SetWriteDeadline(deadline)
	if err := cn.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return Connected{}, fmt.Errorf("client: send authenticate: %w", err)
	}
	// A cancelled ctx (Close while reconnecting) must end the read at once.
	stop := context.AfterFunc(ctx, func() { _ = cn.ws.SetReadDeadline(time.Now()) })
	defer stop()
	var lastErr string
	for {
		_ = cn.ws.SetReadDeadline(deadline)
		_, b, err := cn.ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil && !isClose(err) {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return Connected{}, fmt.Errorf("%w waiting for connected", ErrTimeout)
				}
				return Connected{}, ctx.Err()
			}
			return Connected{}, closeErrorOf(err, lastErr)
		}
		f, err := decodeFrame(b)
		if err != nil {
			continue
		}
		switch f.Event {
		case protocol.EventConnected:
			var d Connected
			if err := f.Decode(&d); err != nil {
				return Connected{}, fmt.Errorf("client: connected data %s: %w", f.Data, err)
			}
			if priv != nil {
				key, err := cn.c.deriveKey(priv, d)
				if err != nil {
					_ = cn.ws.WriteControl(websocket.CloseMessage,
						websocket.FormatCloseMessage(websocket.CloseNormalClosure, clientRefusedReason), deadline)
					return Connected{}, err
				}
				cn.key = key
				d.Encrypted = true
			}
			_ = cn.ws.SetReadDeadline(time.Time{})
			_ = cn.ws.SetWriteDeadline(time.Time{})
			cn.session.Store(&d)
			return d, nil
		case protocol.EventError:
			var e protocol.ErrorData
			_ = f.Decode(&e)
			lastErr = e.Message
		}
	}
}

// start runs the reader and writer.
func (cn *conn) start() {
	cn.ws.SetPingHandler(cn.onPing)
	if !cn.c.goFunc(cn.readLoop, cn.writeLoop) {
		// Closed meanwhile: the connection ends before it began.
		cn.setCause(ErrClosed)
		_ = cn.ws.Close()
		close(cn.done)
		close(cn.wdone)
	}
}

// onPing answers the server's ping (gorilla's default does the same) and
// counts it as a sign of life. WriteControl may run beside the writer.
func (cn *conn) onPing(data string) error {
	cn.extendRead()
	err := cn.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cn.c.opts.WriteTimeout))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// extendRead moves the read deadline to ReadTimeout from now. Moving it
// updates a runtime timer, which a busy connection would pay for every
// frame, so it moves at most every ReadTimeout/16 and is set that much
// further: a connection ends between ReadTimeout and 17/16 ReadTimeout
// after its last frame or ping. Only the reader calls it (gorilla runs the
// ping handler inside the read).
func (cn *conn) extendRead() {
	rt := cn.c.opts.ReadTimeout
	if rt <= 0 || cn.dropping.Load() {
		return
	}
	now := time.Now()
	if now.Sub(cn.readMoved) < rt/16 {
		return
	}
	cn.readMoved = now
	_ = cn.ws.SetReadDeadline(now.Add(rt + rt/16))
}

// maxKeptReadBuffer is the largest read buffer a connection keeps between
// frames; a larger frame's buffer is let go after it.
const maxKeptReadBuffer = 64 << 10

func (cn *conn) readLoop() {
	defer func() {
		_ = cn.ws.Close()
		close(cn.done)
	}()
	// One buffer for every frame: route copies what it keeps.
	var buf bytes.Buffer
	for {
		cn.extendRead()
		_, r, err := cn.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			cn.mu.Lock()
			last := cn.lastErr
			cn.mu.Unlock()
			cn.setCause(closeErrorOf(err, last))
			return
		}
		if !cn.dropping.Load() {
			cn.route(buf.Bytes())
		}
		if buf.Cap() > maxKeptReadBuffer {
			buf = bytes.Buffer{}
		}
	}
}

// route handles one frame on the reader goroutine: answers go to their
// request, protocol events to the client, the rest to the handlers. b is
// the reader's buffer: nothing may keep it past the call.
func (cn *conn) route(b []byte) {
	c := cn.c
	f, err := decodeFrame(b)
	if err != nil || f.Event == "" {
		c.log.Debug("frame dropped: not a frame", zap.String("frame", string(b)))
		return
	}
	if cn.key != nil {
		var ok bool
		if f, ok = cn.unwrap(f); !ok {
			return
		}
	}
	if f.ID != "" && cn.resolve(f) {
		return
	}
	switch f.Event {
	case protocol.EventError:
		var e protocol.ErrorData
		_ = f.Decode(&e)
		cn.mu.Lock()
		cn.lastErr = e.Message
		cn.mu.Unlock()
		c.log.Debug("server error", zap.String("message", e.Message))
		if h := c.opts.OnServerError; h != nil {
			c.disp.notice("server error", func() { h(&ServerError{Message: e.Message}) })
		}
	case protocol.EventSessionExpiring:
		var d protocol.ExpiryData
		_ = f.Decode(&d)
		at, _ := time.Parse(time.RFC3339Nano, d.ExpiresAt)
		if h := c.opts.OnSessionExpiring; h != nil {
			c.disp.notice("session expiring", func() { h(at) })
		}
		if *c.opts.AutoRefresh {
			c.autoRefresh()
		}
	case eventGap:
		var g Gap
		if err := f.Decode(&g); err != nil {
			c.log.Debug("gap notice dropped", zap.Error(err))
			return
		}
		if h := c.opts.OnGap; h != nil {
			c.disp.notice("gap", func() { h(g) })
		}
	case protocol.EventPresence:
		var p PresenceEvent
		if err := f.Decode(&p); err != nil {
			return
		}
		if h := c.opts.OnPresence; h != nil {
			c.disp.notice("presence", func() { h(p) })
		}
		// A presence notice in a history room is part of its stream too.
		c.recordOffset(f)
	case protocol.EventConnected, protocol.EventAck, protocol.EventRefreshed, protocol.EventHeartbeat:
		// Answers whose request is gone (timed out or cancelled).
		c.log.Debug("late answer dropped", zap.String("event", f.Event), zap.String("id", f.ID))
	default:
		if h := c.opts.OnFrame; h != nil {
			c.callOnFrame(h, f)
		} else if h := c.opts.OnEvent; h != nil {
			if !c.disp.push(func() { h(f) }, true) {
				// The frame is not recorded, so a history room recovers
				// it after the reconnect.
				c.log.Warn("handlers too slow: dropping the connection", zap.Int("event_queue", c.opts.EventQueue))
				cn.drop(ErrEventQueueFull, protocol.ClosePolicyViolation, "Event queue full")
				return
			}
		}
		c.recordOffset(f)
	}
}

// callOnFrame runs Options.OnFrame on the reader goroutine, recovering
// a panic like the handler goroutine does.
func (c *Client) callOnFrame(h func(Frame), f Frame) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("OnFrame panicked", zap.String("event", f.Event), zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	h(f)
}

// eventGap is the server's subscription-gap notice (issue 14).
const eventGap = "gap"

func (cn *conn) writeLoop() {
	defer close(cn.wdone)
	var tick <-chan time.Time
	if hb := cn.c.opts.HeartbeatInterval; hb > 0 {
		t := time.NewTicker(hb)
		defer t.Stop()
		tick = t.C
	}
	for {
		var b []byte
		select {
		case b = <-cn.out:
		case <-tick:
			b = heartbeatFrame
		case cf := <-cn.closeReq:
			_ = cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(cf.code, cf.reason),
				time.Now().Add(cn.c.opts.WriteTimeout))
			return
		case <-cn.done:
			return
		}
		_ = cn.ws.SetWriteDeadline(time.Now().Add(cn.c.opts.WriteTimeout))
		if err := cn.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			cn.setCause(&CloseError{Code: closeAbnormal, Reason: "write: " + err.Error()})
			_ = cn.ws.Close() // the reader returns at once
			return
		}
	}
}

// enqueue hands b to the writer without waiting.
func (cn *conn) enqueue(b []byte) error {
	select {
	case <-cn.done:
		return ErrNotConnected
	default:
	}
	select {
	case cn.out <- b:
		return nil
	default:
		return ErrSendQueueFull
	}
}

// register makes the answer with id go to the returned channel.
func (cn *conn) register(id string) chan Frame {
	ch := make(chan Frame, 1)
	cn.mu.Lock()
	cn.pending[id] = ch
	cn.mu.Unlock()
	return ch
}

func (cn *conn) unregister(id string) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

// resolve hands f to the request waiting for its id.
func (cn *conn) resolve(f Frame) bool {
	cn.mu.Lock()
	ch, ok := cn.pending[f.ID]
	delete(cn.pending, f.ID)
	cn.mu.Unlock()
	if ok {
		ch <- f // capacity 1, one answer per id
	}
	return ok
}

func (cn *conn) setCause(err error) {
	cn.mu.Lock()
	if cn.cause == nil {
		cn.cause = err
	}
	cn.mu.Unlock()
}

// err is why the connection ended (valid once done is closed).
func (cn *conn) err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.cause
}

// drop closes the connection from our side: the writer sends the close
// frame, the reader discards what still arrives and returns when the
// server answers the close or CloseGrace has passed.
func (cn *conn) drop(cause error, code int, reason string) {
	cn.setCause(cause)
	cn.dropping.Store(true)
	_ = cn.ws.SetReadDeadline(time.Now().Add(cn.c.opts.CloseGrace))
	select {
	case cn.closeReq <- closeFrame{code: code, reason: reason}:
	default:
	}
}

// shutdown drops the connection and waits until the reader and writer
// have returned, cutting the socket after CloseGrace.
func (cn *conn) shutdown(cause error, code int, reason string) {
	cn.drop(cause, code, reason)
	t := time.NewTimer(cn.c.opts.CloseGrace)
	defer t.Stop()
	select {
	case <-cn.done:
	case <-t.C:
		_ = cn.ws.Close()
		<-cn.done
	}
	<-cn.wdone
}

func isClose(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce)
}

// closeErrorOf turns a read error into a *CloseError: the server's close
// code and reason, or 1006 with the network error as reason.
func closeErrorOf(err error, lastErr string) *CloseError {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Reason: ce.Text, Message: lastErr}
	}
	return &CloseError{Code: closeAbnormal, Reason: err.Error(), Message: lastErr}
}
