package server

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Disconnect is a close the server decides: a WebSocket close code and the
// reason sent with it. It is an error, so application code can return or
// wrap it. Every close the Helper makes is one of these values.
type Disconnect = protocol.Disconnect

// The closes the Helper makes on its own.
var (
	DisconnectShutdown           = Disconnect{Code: protocol.CloseGoingAway, Reason: protocol.ReasonShutdown}
	DisconnectAuthTimeout        = Disconnect{Code: protocol.CloseAuthTimeout, Reason: protocol.ReasonAuthTimeout}
	DisconnectHeartbeatTimeout   = Disconnect{Code: protocol.CloseHeartbeatTimeout, Reason: protocol.ReasonHeartbeatTimeout}
	DisconnectAuthFailed         = Disconnect{Code: protocol.CloseAuthFailed, Reason: protocol.ReasonAuthFailed}
	DisconnectEncryptionRequired = Disconnect{Code: protocol.CloseEncryptionRequired, Reason: protocol.ReasonEncryptionRequired}
	// DisconnectDefault is what Helper.Disconnect sends for a zero Disconnect.
	DisconnectDefault        = Disconnect{Code: protocol.CloseDisconnected, Reason: protocol.ReasonDisconnected}
	DisconnectSessionExpired = Disconnect{Code: protocol.CloseSessionExpired, Reason: protocol.ReasonSessionExpired}
	DisconnectBackpressure   = Disconnect{Code: protocol.ClosePolicyViolation, Reason: protocol.ReasonBackpressure}
	DisconnectRateLimited    = Disconnect{Code: protocol.ClosePolicyViolation, Reason: protocol.ReasonRateLimited}
	DisconnectTooManyConns   = Disconnect{Code: protocol.ClosePolicyViolation, Reason: protocol.ReasonTooManyConnections}
	DisconnectInvalidUTF8    = Disconnect{Code: protocol.CloseInvalidPayload, Reason: protocol.ReasonInvalidUTF8}
	// DisconnectTooBig has no reason, as gorilla and Bun send none.
	DisconnectTooBig = Disconnect{Code: protocol.CloseMessageTooBig}
)

// ErrInvalidDisconnect is returned for a Disconnect an application may not
// send: a code outside 4000–4999 or a reason longer than 123 bytes (the room
// a close frame has) or not UTF-8.
var ErrInvalidDisconnect = errors.New("server: invalid disconnect")

// maxCloseReason is the longest reason a close frame can carry (RFC 6455
// §5.5: 125 bytes of payload, two of them the code).
const maxCloseReason = protocol.MaxCloseReason

// appDisconnect checks a Disconnect from application code; the zero value
// becomes DisconnectDefault.
func appDisconnect(d Disconnect) (Disconnect, error) {
	if d == (Disconnect{}) {
		return DisconnectDefault, nil
	}
	if d.Code < 4000 || d.Code > 4999 {
		return d, fmt.Errorf("%w: code %d: applications close with 4000-4999", ErrInvalidDisconnect, d.Code)
	}
	if len(d.Reason) > maxCloseReason || !utf8.ValidString(d.Reason) {
		return d, fmt.Errorf("%w: reason must be UTF-8 of at most %d bytes", ErrInvalidDisconnect, maxCloseReason)
	}
	return d, nil
}

// Disconnect closes a local client with d (the zero value: 4005
// "Disconnected") after what is already queued for it, so a last message
// sent just before still arrives. ClientDisconnected runs as for any close.
// It returns ErrClientNotFound when no local client has that id.
func (h *Helper) Disconnect(clientID string, d Disconnect) error {
	d, err := appDisconnect(d)
	if err != nil {
		return err
	}
	c, ok := h.lookup(clientID)
	if !ok {
		return ErrClientNotFound
	}
	c.close(d, false)
	return nil
}

// disconnectUserLocal closes every local session of userID and reports how
// many there were.
func (h *Helper) disconnectUserLocal(userID string, d Disconnect) int {
	h.mu.RLock()
	cs := collect(h.users[userID])
	h.mu.RUnlock()
	for _, c := range cs {
		c.close(d, false)
	}
	return len(cs)
}

// DisconnectUser closes every session of a user on every instance: the local
// ones at once, the others through a control message on ws:control. A nil
// error means Redis took the control message. While Redis is down the
// local sessions are still closed and the error is a *PublishError
// (errors.Is(err, ErrNotReady)); calling again later is safe (closing twice
// closes once).
func (h *Helper) DisconnectUser(ctx context.Context, userID string, d Disconnect) error {
	d, err := appDisconnect(d)
	if err != nil {
		return err
	}
	if userID == "" {
		return errors.New("server: DisconnectUser: empty user id")
	}
	n := h.disconnectUserLocal(userID, d)
	return h.publishControl(ctx, protocol.Control{Type: protocol.ControlDisconnect, User: userID, Code: d.Code, Reason: d.Reason}, n)
}

// DisconnectClient closes a client on whichever instance holds it. Like
// DisconnectUser, it is safe to call again after an error.
func (h *Helper) DisconnectClient(ctx context.Context, clientID string, d Disconnect) error {
	d, err := appDisconnect(d)
	if err != nil {
		return err
	}
	if clientID == "" {
		return errors.New("server: DisconnectClient: empty client id")
	}
	n := 0
	if c, ok := h.lookup(clientID); ok {
		c.close(d, false)
		n = 1
	}
	return h.publishControl(ctx, protocol.Control{Type: protocol.ControlDisconnect, Client: clientID, Code: d.Code, Reason: d.Reason}, n)
}

// publishControl sends a control message to the other instances; local is
// how many local clients the caller already acted on (for PublishError).
func (h *Helper) publishControl(ctx context.Context, m protocol.Control, local int) error {
	m.ServerID = h.serverID
	b, err := protocol.EncodeControl(m)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return h.publishPayload(ctx, protocol.ChannelControl, b, "control", local)
}

// parseControl decodes and checks a message from ws:control (protocol's
// codec, shared with the emitter).
func parseControl(payload []byte) (protocol.Control, error) {
	m, err := protocol.DecodeControl(payload)
	if err != nil {
		return m, fmt.Errorf("server: %w", err)
	}
	return m, nil
}

// handleControl acts on a control message from another instance or an
// emitter. Malformed ones are counted and dropped.
func (h *Helper) handleControl(payload []byte) {
	m, err := parseControl(payload)
	if err != nil {
		h.stats.controlMalformed.Add(1)
		h.log.Warn("malformed control message dropped", zap.Error(err), zap.Int("bytes", len(payload)))
		return
	}
	if m.ServerID == h.serverID {
		return
	}
	h.stats.controlReceived.Add(1)
	d := Disconnect{Code: m.Code, Reason: m.Reason}
	if m.User != "" {
		h.disconnectUserLocal(m.User, d)
		return
	}
	if c, ok := h.lookup(m.Client); ok {
		c.close(d, false)
	}
}
