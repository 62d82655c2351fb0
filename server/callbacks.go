package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// AuthenticateRequest is what AuthenticateFunc decides on.
type AuthenticateRequest struct {
	ClientID string
	// Data is the "data" of the client's authenticate frame, as sent.
	Data json.RawMessage
	// Request is the HTTP upgrade request (headers, remote address). Do not
	// read its body. It is nil for a refresh.
	Request *http.Request
	// Refresh is set when the client sent "refresh" to extend its session:
	// the result must name the same user, or the refresh is refused.
	Refresh bool
}

// AuthResult identifies an authenticated client.
type AuthResult struct {
	UserID   string
	Metadata map[string]any
	// ExpiresAt is when the session ends (the token's expiry); zero means
	// never. RefreshWindow before it the client gets "session-expiring";
	// at it the connection is closed with 4006 "Session expired", unless a
	// "refresh" moved it. A time already past closes the session at once.
	ExpiresAt time.Time
}

// AuthenticateFunc authenticates a client from its first message. It returns
// a result to accept, (nil, nil) to reject ("Authentication failed") or an
// error ("Authentication error"); both rejections close the connection with
// 4003. ctx is cancelled when the client goes away or the time runs out.
type AuthenticateFunc func(ctx context.Context, req AuthenticateRequest) (*AuthResult, error)

// ValidateRoomRequest lists the rooms a client asked to join, already
// sanitised.
type ValidateRoomRequest struct {
	ClientID string
	UserID   string
	// Metadata is the client's AuthResult.Metadata (a copy).
	Metadata map[string]any
	Rooms    []string
}

// ValidateRoomFunc returns the subset of req.Rooms the client may join.
// Names it returns that were not requested are ignored. A ClientError is
// sent to the client (with the request's id); another error answers a
// request that has an id with "Internal error".
type ValidateRoomFunc func(ctx context.Context, req ValidateRoomRequest) ([]string, error)

// ClientConnectedEvent describes a client that has just been authenticated.
type ClientConnectedEvent struct {
	ClientID string
	UserID   string
	Metadata map[string]any
}

// ClientConnectedFunc is called after "connected" was queued for the client.
// An error or panic is logged; the client stays connected.
type ClientConnectedFunc func(ctx context.Context, ev ClientConnectedEvent) error

// ClientDisconnectedEvent describes a connection that has ended.
type ClientDisconnectedEvent struct {
	ClientID string
	UserID   string
	// Authenticated tells whether the client had completed authentication.
	Authenticated bool
}

// ClientDisconnectedFunc is called once per connection, after the client was
// removed from every index. An error or panic is logged.
type ClientDisconnectedFunc func(ctx context.Context, ev ClientDisconnectedEvent) error

// MessageEvent is a non-system frame from an authenticated client.
type MessageEvent struct {
	ClientID string
	UserID   string
	// Message is the frame; Message.ID is the client's request id ("" when
	// the frame had none), which Helper.Reply echoes.
	Message protocol.Message
	// Encrypted tells whether the frame arrived inside an "encrypted"
	// envelope (decoded by the InboundTransformer) rather than in plaintext.
	Encrypted bool
}

// MessageHandler handles application events. Calls for one client are made
// one at a time, in the order the frames arrived. It may answer with
// Helper.Reply. A returned ClientError is sent to the client as an error
// event (with the frame's id, if any); any other error is logged (sampled)
// and, when the frame had an id, answered with "Internal error".
type MessageHandler func(ctx context.Context, ev MessageEvent) error

// OutboundRequest is one message about to be written to an encrypted client.
type OutboundRequest struct {
	Client ClientInfo
	Event  string
	// ID is the client's request id when the message is a Helper.Reply;
	// the transformed frame carries it in plaintext so the client can
	// match the answer.
	ID string
	// Data is the message's data as JSON (null when the message has none).
	Data json.RawMessage
}

// OutboundResult replaces the message. Data is encoded as JSON.
type OutboundResult struct {
	Event string
	Data  any
}

// OutboundTransformer rewrites messages to encrypted clients. It returns nil
// to send the message unchanged; an error drops the message for that client.
type OutboundTransformer func(ctx context.Context, req OutboundRequest) (*OutboundResult, error)

// HandshakeRequest starts the encryption handshake for a client that has
// just authenticated.
type HandshakeRequest struct {
	ClientID string
	UserID   string
	// Data is the authenticate payload.
	Data json.RawMessage
}

// HandshakeResult is sent to the client in "connected".
type HandshakeResult struct {
	ServerPublicKey string
	Salt            string
}

// HandshakeFunc performs the key exchange. (nil, nil) or an error rejects the
// client: "Encryption handshake failed" and close 4004.
type HandshakeFunc func(ctx context.Context, req HandshakeRequest) (*HandshakeResult, error)

// InboundRequest is an "encrypted" frame from an encrypted client.
type InboundRequest struct {
	Client ClientInfo
	Data   json.RawMessage
}

// InboundTransformer turns an "encrypted" frame into the frame it carries.
// An error answers the client with "Invalid message format".
type InboundTransformer func(ctx context.Context, req InboundRequest) (*protocol.Message, error)
