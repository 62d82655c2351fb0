package client

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Sentinel errors. Errors returned by the Client wrap one of these (or are
// a *CloseError, *ServerError or Refused), so test them with errors.Is and
// errors.As.
var (
	// ErrClosed: the Client was closed with Close, or stopped for good (see
	// Client.Err for why).
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected: the Client is between two connections (reconnecting).
	// Send, Request, Join, Leave, Presence and Refresh fail fast with it
	// instead of queueing; try again after Options.OnReconnect.
	ErrNotConnected = errors.New("client: not connected")
	// ErrConnectionLost: the connection ended while a request was waiting
	// for its answer. The server may or may not have handled the request.
	ErrConnectionLost = errors.New("client: connection lost before the answer")
	// ErrTimeout: no answer within Options.RequestTimeout (or the
	// connect deadline while dialing).
	ErrTimeout = errors.New("client: timed out")
	// ErrSendQueueFull: more than Options.SendQueue frames are waiting to
	// be written; the frame was not sent.
	ErrSendQueueFull = errors.New("client: send queue full")
	// ErrEventQueueFull is the cause of a connection the Client dropped
	// itself because the handlers fell more than Options.EventQueue frames
	// behind (see Options.EventQueue).
	ErrEventQueueFull = errors.New("client: event queue full: handlers too slow")
	// ErrReconnectGaveUp: Reconnect.MaxAttempts attempts in a row failed.
	ErrReconnectGaveUp = errors.New("client: reconnect attempts exhausted")
	// ErrEncryptionHandshake: Options.Encrypt is set and the client refused
	// the server's "connected": it had no serverPublicKey and salt (the
	// server does not run the encryption handshake), or they were invalid,
	// or the key was not the pinned one (ErrServerKeyMismatch). The client
	// closes that connection itself (1000 "client refused handshake") and,
	// on a reconnect, stops for good: it never falls back to plaintext.
	ErrEncryptionHandshake = errors.New("client: encryption handshake refused")
	// ErrServerKeyMismatch: the server's public key differs from
	// Options.ServerPublicKey. It wraps ErrEncryptionHandshake.
	ErrServerKeyMismatch = fmt.Errorf("%w: server public key does not match Options.ServerPublicKey", ErrEncryptionHandshake)
)

// CloseError is a connection closed by the server (or by the network): the
// WebSocket close code and reason, and Message, the text of the last
// "error" event the server sent before closing, if any (e.g. "Authentication
// error" before a 4003 "Authentication failed"). Code is 1006 when the
// connection was lost without a close frame.
type CloseError struct {
	Code    int
	Reason  string
	Message string
}

// Error describes the close.
func (e *CloseError) Error() string {
	s := "client: connection closed " + strconv.Itoa(e.Code)
	if e.Reason != "" {
		s += " " + strconv.Quote(e.Reason)
	}
	if e.Message != "" {
		s += " (server said " + strconv.Quote(e.Message) + ")"
	}
	return s
}

// ServerError is an "error" event the server sent in answer to a request
// (SPEC §9.1): a server.ClientError's text, "Internal error", "Refresh
// failed", "Invalid message format", …
type ServerError struct {
	Message string
}

// Error returns the server's message with the package prefix.
func (e *ServerError) Error() string { return "client: server error: " + e.Message }

// Internal reports whether the server answered "Internal error": the
// handler failed in a way it did not explain to the client.
func (e *ServerError) Internal() bool { return e.Message == protocol.ErrMsgInternal }

// Refused is a room a join, leave or presence request was not applied to,
// with the server's reason ("invalid name", "not allowed", "too many
// rooms", "not a member"). Presence returns it as its error.
type Refused struct {
	Room   string `json:"room"`
	Reason string `json:"reason"`
}

// Error describes the refusal.
func (r Refused) Error() string {
	return "client: room " + strconv.Quote(r.Room) + " refused: " + r.Reason
}

// DefaultShouldRetry is the reconnect decision when Reconnect.ShouldRetry
// is nil. It reconnects after closes that a new connection can cure and
// stops after the ones the server (or the app behind it) decided for good:
//
//   - retry: 1001 shutdown, 1006 lost connection (no close frame), 1011
//     internal error, 1012/1013 restart and try again later, 1008 policy
//     (backpressure, rate limit, too many connections: with backoff),
//     4001 auth timeout, 4002 heartbeat timeout, 4006 session expired
//     (the new connection calls Options.Credentials for fresh ones; if the
//     server then refuses them the 4003 stops the client), and a 4003
//     whose error was "Authentication error" (the server's authenticate
//     handler failed, not the credentials);
//   - stop: 1000 normal close, 1007 and 1009 (the client sent something
//     wrong: a retry sends it again), 4003 "Authentication failed" (the
//     credentials were refused), 4004 encryption required (the server's
//     handshake refused the client: Options.Encrypt is off, or its key
//     was not accepted), 4005 Disconnect and every other 4000–4999 code an
//     app chose, and any other code.
func DefaultShouldRetry(e *CloseError) bool {
	switch e.Code {
	case protocol.CloseGoingAway, 1006, protocol.CloseInternalError, 1012, 1013,
		protocol.ClosePolicyViolation,
		protocol.CloseAuthTimeout, protocol.CloseHeartbeatTimeout, protocol.CloseSessionExpired:
		return true
	case protocol.CloseAuthFailed:
		return e.Message == protocol.ErrMsgAuthError
	}
	return false
}
