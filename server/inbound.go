package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/jsonscan"
)

// inboundFrame is how a client frame is decoded: fields stay raw so that a
// wrong type is told apart from a missing field.
type inboundFrame struct {
	Event json.RawMessage `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    json.RawMessage `json:"id"`
}

// errDropFrame marks a frame that is dropped without a reply.
var errDropFrame = errors.New("server: frame has no event")

// parseFrame decodes one client frame. It returns errDropFrame for an object
// without a usable event and another error for anything that is not a JSON
// object with a string event. The usual frame is read by parseFrameFast
// without reflection; anything else goes to parseFrameJSON, and the result
// is the same either way (FuzzParseFrameFastPath checks it).
func parseFrame(data []byte) (protocol.Message, error) {
	if msg, ok := parseFrameFast(data); ok {
		return msg, nil
	}
	return parseFrameJSON(data)
}

// parseFrameJSON is parseFrame with encoding/json, for any frame.
func parseFrameJSON(data []byte) (protocol.Message, error) {
	var msg protocol.Message
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !utf8.Valid(data) {
		return msg, errInvalidFrame
	}
	var in inboundFrame
	if err := json.Unmarshal(trimmed, &in); err != nil {
		return msg, errInvalidFrame
	}
	if len(in.Event) == 0 || string(in.Event) == "null" {
		return msg, errDropFrame
	}
	if in.Event[0] != '"' {
		return msg, errInvalidFrame
	}
	if err := json.Unmarshal(in.Event, &msg.Event); err != nil {
		return msg, errInvalidFrame
	}
	if msg.Event == "" {
		return msg, errDropFrame
	}
	if len(in.ID) > 0 {
		// §9.1: an id is a string of at most MaxIDLength characters.
		if in.ID[0] != '"' || json.Unmarshal(in.ID, &msg.ID) != nil ||
			utf8.RuneCountInString(msg.ID) > protocol.MaxIDLength {
			return protocol.Message{}, errInvalidFrame
		}
	}
	if len(in.Data) > 0 {
		msg.Data = in.Data
	}
	return msg, nil
}

// parseFrameFast decodes the usual client frame without reflection and
// says ok only when the Message is the one parseFrameJSON returns with a
// nil error: valid UTF-8 throughout; a JSON object with nothing but white
// space around it; keys without escapes, "event", "data" and "id" at most
// once each and spelled so, other keys in ASCII that encoding/json would
// not match to those three (it ignores case); event a non-empty string and
// id a string of at most MaxIDLength characters, both without escapes;
// data any valid JSON value nested at most jsonscan.MaxDepth levels, kept
// as a copy of its bytes ("null" included). Frames that are dropped or
// refused always take the slow path.
func parseFrameFast(data []byte) (msg protocol.Message, ok bool) {
	i := jsonscan.SkipSpace(data, 0)
	if i >= len(data) || data[i] != '{' || !utf8.Valid(data) {
		return msg, false
	}
	var event, id, raw []byte
	var seen uint8
	i = jsonscan.SkipSpace(data, i+1)
	for {
		key, end, ok := jsonscan.PlainString(data, i)
		if !ok {
			return msg, false
		}
		i = jsonscan.SkipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return msg, false
		}
		i = jsonscan.SkipSpace(data, i+1)
		var bit uint8
		switch string(key) {
		case "event":
			bit = 1
		case "data":
			bit = 2
		case "id":
			bit = 4
		default:
			if mayMatchField(key) {
				return msg, false
			}
		}
		if seen&bit != 0 {
			return msg, false // encoding/json keeps the last one: leave it to it
		}
		seen |= bit
		switch bit {
		case 1, 4:
			s, end, ok := jsonscan.PlainString(data, i)
			if !ok || bit == 1 && len(s) == 0 ||
				bit == 4 && utf8.RuneCount(s) > protocol.MaxIDLength {
				return msg, false
			}
			if bit == 1 {
				event = s
			} else {
				id = s
			}
			i = end
		default:
			end, ok := jsonscan.SkipValue(data, i)
			if !ok {
				return msg, false
			}
			if bit == 2 {
				raw = data[i:end]
			}
			i = end
		}
		i = jsonscan.SkipSpace(data, i)
		if i >= len(data) {
			return msg, false
		}
		if data[i] == '}' {
			break
		}
		if data[i] != ',' {
			return msg, false
		}
		i = jsonscan.SkipSpace(data, i+1)
	}
	if event == nil || jsonscan.SkipSpace(data, i+1) != len(data) {
		return msg, false
	}
	msg.Event = eventName(event)
	if len(id) > 0 {
		msg.ID = string(id)
	}
	if raw != nil {
		// A copy, as encoding/json makes: the frame's buffer is not ours.
		msg.Data = append(json.RawMessage(nil), raw...)
	}
	return msg, true
}

// mayMatchField reports whether encoding/json could decode a top-level
// key other than the exact "event", "data" and "id" into one of those
// fields: it matches names ignoring case (with Unicode folding, so any
// non-ASCII key counts), and dashes and underscores are ignored too for
// good measure.
func mayMatchField(key []byte) bool {
	var folded [5]byte
	n := 0
	for _, c := range key {
		switch {
		case c >= utf8.RuneSelf:
			return true
		case c == '-' || c == '_':
			continue
		case n == len(folded):
			return false
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		folded[n] = c
		n++
	}
	switch string(folded[:n]) {
	case "event", "data", "id":
		return true
	}
	return false
}

// eventName returns the event as a string, without allocating for the
// events of the protocol.
func eventName(b []byte) string {
	switch string(b) {
	case protocol.EventHeartbeat:
		return protocol.EventHeartbeat
	case protocol.EventJoin:
		return protocol.EventJoin
	case protocol.EventLeave:
		return protocol.EventLeave
	case protocol.EventAuthenticate:
		return protocol.EventAuthenticate
	case protocol.EventEncrypted:
		return protocol.EventEncrypted
	case protocol.EventRefresh:
		return protocol.EventRefresh
	case protocol.EventPresence:
		return protocol.EventPresence
	}
	return string(b)
}

var errInvalidFrame = errors.New("server: invalid frame")

// handleFrame routes one frame from c. It runs on c's reader goroutine.
func (h *Helper) handleFrame(c *client, data []byte) {
	msg, err := parseFrame(data)
	if err != nil {
		if errors.Is(err, errDropFrame) {
			h.logDebug("frame without event dropped", c.id, nil)
			return
		}
		c.sendError(protocol.ErrMsgInvalidFormat, "")
		return
	}
	h.route(c, msg, false)
}

// route handles a decoded frame. decrypted is set for frames that came out
// of an "encrypted" envelope, which may not nest.
func (h *Helper) route(c *client, msg protocol.Message, decrypted bool) {
	if msg.Event == protocol.EventHeartbeat {
		return
	}
	c.mu.Lock()
	state := c.state
	userID := c.userID
	encrypted := c.encrypted
	c.mu.Unlock()

	if msg.Event == protocol.EventAuthenticate {
		if state != protocol.StateUnauthorized {
			c.sendError(protocol.ErrMsgAlreadyAuthenticated, msg.ID)
			return
		}
		h.startAuth(c, msg.Data)
		return
	}
	if state != protocol.StateAuthenticated {
		c.sendError(protocol.ErrMsgNotAuthenticated, msg.ID)
		return
	}
	if encrypted && !decrypted && h.cfg.RequireEncryptedInbound && msg.Event != protocol.EventEncrypted {
		// §9.3: an encrypted client may not fall back to plaintext.
		c.sendError(protocol.ErrMsgEncryptionRequired, msg.ID)
		return
	}
	switch msg.Event {
	case protocol.EventJoin:
		h.handleJoin(c, userID, msg)
		return
	case protocol.EventLeave:
		h.handleLeave(c, msg)
		return
	case protocol.EventRefresh:
		h.handleRefresh(c, msg)
		return
	case protocol.EventPresence:
		if h.presence != nil {
			h.handlePresenceRequest(c, msg)
			return
		}
	case protocol.EventEncrypted:
		if !decrypted && encrypted && h.opts.InboundTransformer != nil {
			h.handleEncrypted(c, msg)
		}
		return
	}
	if protocol.IsSystemEvent(msg.Event) {
		return
	}
	if h.opts.Message == nil {
		return
	}
	ev := MessageEvent{ClientID: c.id, UserID: userID, Message: msg, Encrypted: decrypted}
	if err := h.callback("message", c.id, func() error { return h.opts.Message(c.ctx, ev) }); err != nil {
		c.answerError(err, msg.ID)
	}
}

func (h *Helper) handleEncrypted(c *client, msg protocol.Message) {
	req := InboundRequest{Client: c.info(), Data: msg.Data}
	var inner *protocol.Message
	err := h.callback("inbound transformer", c.id, func() error {
		var err error
		inner, err = h.opts.InboundTransformer(c.ctx, req)
		return err
	})
	if err != nil || inner == nil || inner.Event == "" || utf8.RuneCountInString(inner.ID) > protocol.MaxIDLength {
		c.sendError(protocol.ErrMsgInvalidFormat, msg.ID)
		return
	}
	if inner.ID == "" {
		// The id may travel outside the envelope, as replies carry it.
		inner.ID = msg.ID
	}
	h.route(c, *inner, true)
}

// startAuth moves c to authenticating and runs the authenticate callback on
// its own goroutine so the reader keeps watching the socket.
func (h *Helper) startAuth(c *client, data json.RawMessage) {
	// Not a child of c.ctx, which would then keep a Done channel and a
	// children map for the rest of the connection: finish (and Shutdown)
	// call authCancel themselves.
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.ctx))
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		cancel()
		return
	}
	c.state = protocol.StateAuthenticating
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	c.authTimer = time.AfterFunc(3*h.cfg.AuthTimeout, func() {
		h.stats.authTimeouts.Add(1)
		h.sampled(sampleAuthTimeout, "client closed: authentication timeout", zap.String("client_id", c.id))
		c.close(DisconnectAuthTimeout, false)
	})
	c.authCancel = cancel
	c.mu.Unlock()
	h.conns.goAlways(func() {
		defer cancel()
		h.authenticate(ctx, c, data)
	})
}

// gone reports whether the authentication of c must stop silently.
func gone(ctx context.Context, c *client) bool {
	return ctx.Err() != nil || c.isClosing()
}

func (h *Helper) authenticate(ctx context.Context, c *client, data json.RawMessage) {
	var res *AuthResult
	req := AuthenticateRequest{ClientID: c.id, Data: data, Request: c.req}
	err := h.callback("authenticate", c.id, func() error {
		var err error
		res, err = h.opts.Authenticate(ctx, req)
		return err
	})
	if gone(ctx, c) {
		return
	}
	if err != nil || res == nil {
		h.stats.authFailures.Add(1)
		msg := protocol.ErrMsgAuthFailed
		if err != nil {
			msg = protocol.ErrMsgAuthError
		}
		h.sampled(sampleAuthFailure, "authentication failed", zap.String("client_id", c.id), zap.String("reply", msg))
		c.closeAfter(errorFrame(msg, ""), DisconnectAuthFailed, false)
		return
	}

	var hs *HandshakeResult
	if h.cfg.RequireEncryption {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		c.state = protocol.StateHandshaking
		c.userID = res.UserID
		c.mu.Unlock()
		hreq := HandshakeRequest{ClientID: c.id, UserID: res.UserID, Data: data}
		herr := h.callback("handshake", c.id, func() error {
			var err error
			hs, err = h.opts.Handshake(ctx, hreq)
			return err
		})
		if gone(ctx, c) {
			return
		}
		if herr != nil || hs == nil {
			h.stats.handshakeFailures.Add(1)
			h.sampled(sampleAuthFailure, "encryption handshake failed", zap.String("client_id", c.id))
			c.closeAfter(errorFrame(protocol.ErrMsgHandshakeFailed, ""), DisconnectEncryptionRequired, false)
			return
		}
	}

	// Index first, while the client still receives no application
	// messages, then flip the state and queue "connected" in one step so
	// that every later message follows "connected".
	switch h.indexAuthenticated(c, res.UserID) {
	case indexGone:
		return
	case indexUserFull:
		h.sampled(sampleAuthFailure, "client refused: too many connections for user", zap.String("client_id", c.id), zap.String("user_id", res.UserID))
		c.closeAfter(errorFrame(protocol.ErrMsgTooManyConnections, ""), DisconnectTooManyConns, false)
		return
	}
	h.awaitRoutes(ctx, c, res.UserID)
	if gone(ctx, c) {
		return
	}
	now := time.Now()
	connected := ConnectedFrame(c.id, res.UserID, now, hs)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.state = protocol.StateAuthenticated
	c.userID = res.UserID
	c.metadata = res.Metadata
	c.authenticatedAt = now
	if hs != nil {
		c.encrypted = true
	}
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.authCancel = nil
	if c.pending {
		c.pending = false
		h.pending.Add(-1)
	}
	c.expiresAt = res.ExpiresAt
	c.armSessionLocked()
	// Queued past the backpressure limit: the client needs it. Under c.mu,
	// so that every message delivered after the state flip follows it.
	queued := c.out.pushAlways(frame{kind: frameText, size: len(connected), data: connected})
	c.req = nil // the upgrade request is kept only for authentication
	c.mu.Unlock()
	c.out.flush()
	if queued {
		h.stats.out.Add(1)
	}
	h.stats.authenticated.Add(1)
	if obs := h.opts.Observer; obs != nil {
		obs.ObserveConnected(now.Sub(c.connectedAt))
	}
	if ce := h.log.Check(zap.DebugLevel, "client authenticated"); ce != nil {
		ce.Write(zap.String("client_id", c.id), zap.String("user_id", res.UserID))
	}

	if h.opts.ClientConnected != nil {
		ev := ClientConnectedEvent{ClientID: c.id, UserID: res.UserID, Metadata: res.Metadata}
		_ = h.callback("client connected", c.id, func() error {
			return h.opts.ClientConnected(c.ctx, ev)
		})
	}
}

type indexResult int

const (
	indexOK indexResult = iota
	indexGone
	indexUserFull
)

// indexAuthenticated adds c to the user index, its own-id room and the
// default rooms. It fails when the client has already been removed or its
// user is at MaxConnectionsPerUser.
func (h *Helper) indexAuthenticated(c *client, userID string) indexResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.removed {
		return indexGone
	}
	if userID != "" {
		set, ok := h.users[userID]
		if max := h.cfg.MaxConnectionsPerUser; max > 0 && set.len() >= max {
			return indexUserFull
		}
		if !ok {
			h.bus.Want(protocol.ChannelUser(userID))
		}
		set.add(c)
		h.users[userID] = set
	}
	c.indexed = true
	c.indexedUser = userID
	h.bus.Want(protocol.ChannelClient(c.id))
	h.addToRoomLocked(c, c.id)
	for _, room := range h.cfg.DefaultRooms {
		if c.rooms.len() >= h.cfg.MaxRoomsPerClient {
			break
		}
		h.addToRoomLocked(c, room)
	}
	return indexOK
}

// routeWait bounds how long authentication waits for the bus to confirm
// the new client's channels.
const routeWait = 2 * time.Second

// awaitRoutes waits (briefly; the bus returns at once while it is down or
// when every channel is always live) until the channels that reach c from
// other instances are subscribed, so that a client that has seen
// "connected" misses nothing sent to it, its user or its rooms.
func (h *Helper) awaitRoutes(ctx context.Context, c *client, userID string) {
	chans := make([]string, 0, 3+len(h.cfg.DefaultRooms))
	chans = append(chans, protocol.ChannelClient(c.id), protocol.ChannelRoom(c.id))
	if userID != "" {
		chans = append(chans, protocol.ChannelUser(userID))
	}
	for _, r := range h.cfg.DefaultRooms {
		chans = append(chans, protocol.ChannelRoom(r))
	}
	ctx, cancel := context.WithTimeout(ctx, routeWait)
	defer cancel()
	h.bus.Await(ctx, chans)
}

// ConnectedFrame encodes the "connected" frame. Exported for tests and
// custom clients that want the exact bytes.
func ConnectedFrame(clientID, userID string, at time.Time, hs *HandshakeResult) []byte {
	d := protocol.ConnectedData{ID: clientID, UserID: userID, Time: at.UTC().Format(protocol.TimeFormat)}
	if hs != nil {
		d.ServerPublicKey = hs.ServerPublicKey
		d.Salt = hs.Salt
	}
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventConnected, Data: d})
	return b
}

// errorFrame encodes {"event":"error","data":{"message":msg}}, with the id
// of the frame it answers when there is one.
func errorFrame(msg, id string) []byte {
	b, _ := json.Marshal(protocol.OutMessage{Event: protocol.EventError, Data: protocol.ErrorData{Message: msg}, ID: id})
	return b
}
