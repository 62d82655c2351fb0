// Package protocol holds the wire vocabulary shared by the WebSocket server
// helper and the Redis emitter: frame and envelope types, event names, Redis
// channel names, client states, defaults, close codes and the error strings a
// client can receive.
//
// Every string here is part of the contract with browsers and with Ignis
// servers on the same Redis; changing one is a breaking change.
package protocol

import (
	"encoding/json"
	"strconv"
	"time"
)

// Message is one frame on the socket: {"event": string, "data"?: any, "id"?: string}.
// Data stays raw so the server can route a frame without decoding its payload.
type Message struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
	ID    string          `json:"id,omitempty"`
}

// OutMessage is a frame the server writes. Data is encoded as given; a nil
// Data is omitted from the frame.
type OutMessage struct {
	Event string `json:"event"`
	Data  any    `json:"data,omitempty"`
	ID    string `json:"id,omitempty"`
}

// Envelope is the JSON published on Redis between servers and from emitters.
// Its field names match Ignis' IRedisSocketMessage so both fleets interoperate.
type Envelope struct {
	ServerID string          `json:"serverId"`
	Type     MessageType     `json:"type"`
	Target   string          `json:"target,omitempty"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	Exclude  []string        `json:"exclude,omitempty"`
	// Offset is set on messages to history rooms (SPEC §9.5): the
	// message's position in ws:history:{room}, "<epoch>:<stream id>".
	// Ignis servers ignore it.
	Offset string `json:"offset,omitempty"`
}

// MessageType says how an Envelope is delivered.
type MessageType string

// The envelope types.
const (
	TypeClient    MessageType = "client"
	TypeUser      MessageType = "user"
	TypeRoom      MessageType = "room"
	TypeBroadcast MessageType = "broadcast"
)

// Valid reports whether t is one of the four envelope types.
func (t MessageType) Valid() bool {
	switch t {
	case TypeClient, TypeUser, TypeRoom, TypeBroadcast:
		return true
	}
	return false
}

// System events. A client may send authenticate, join, leave, heartbeat and
// (for encrypted clients) encrypted; the server sends connected, error and
// encrypted.
const (
	EventAuthenticate = "authenticate"
	EventConnected    = "connected"
	EventDisconnect   = "disconnect"
	EventJoin         = "join"
	EventLeave        = "leave"
	EventError        = "error"
	EventHeartbeat    = "heartbeat"
	EventEncrypted    = "encrypted"
)

// Events of the second stage (none of them is sent to a client that does
// not use the feature): ack answers a join or leave that carried an id;
// session-expiring warns before AuthResult.ExpiresAt; refresh (C→S)
// re-authenticates and refreshed answers it.
const (
	EventAck             = "ack"
	EventSessionExpiring = "session-expiring"
	EventRefresh         = "refresh"
	EventRefreshed       = "refreshed"
	// EventPresence is a member's request for a presence room's entries
	// (C→S, answered by an ack) and a join/leave notice (S→C, with
	// Config.PresenceEvents).
	EventPresence = "presence"
	// EventGap (S→C, with Config.GapNotice) says that messages may have
	// been lost between From and To because this server's Redis
	// subscription was down; EventRecovery (S→C) says, per history room,
	// that the server could not recover what its members missed
	// ({"recovered":{room:false}}, as in a join's ack).
	EventGap      = "gap"
	EventRecovery = "recovery"
)

// GapData is the payload of a gap event: RFC 3339 times in UTC.
type GapData struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Presence keys (Redis keys, not channels: Ignis never sees them).
const (
	// KeyPresencePrefix + room is the hash clientId → PresenceEntry JSON.
	KeyPresencePrefix = "ws:presence:"
	// KeyAlivePrefix + serverId exists while that instance lives.
	KeyAlivePrefix = "ws:alive:"
)

// PresenceEntry is one member of a presence room, fleet-wide.
type PresenceEntry struct {
	ClientID string `json:"clientId"`
	UserID   string `json:"userId"`
	ServerID string `json:"serverId"`
	JoinedAt string `json:"joinedAt"` // RFC 3339 with milliseconds, UTC
}

// PresenceEvent is the data of a presence notice.
type PresenceEvent struct {
	Room     string `json:"room"`
	Action   string `json:"action"` // "join" or "leave"
	ClientID string `json:"clientId"`
	UserID   string `json:"userId"`
}

// PresenceAck answers a presence request.
type PresenceAck struct {
	Event   string          `json:"event"` // "presence"
	Room    string          `json:"room"`
	Clients []PresenceEntry `json:"clients"`
	Users   int             `json:"users"`
}

// IsSystemEvent reports whether event is reserved by the protocol and so never
// reaches the application's message handler.
func IsSystemEvent(event string) bool {
	switch event {
	case EventAuthenticate, EventConnected, EventDisconnect, EventJoin,
		EventLeave, EventError, EventHeartbeat, EventEncrypted,
		EventAck, EventSessionExpiring, EventRefresh, EventRefreshed:
		return true
	}
	return false
}

// Redis channel names and prefixes.
const (
	ChannelBroadcast     = "ws:broadcast"
	ChannelRoomPrefix    = "ws:room:"
	ChannelClientPrefix  = "ws:client:"
	ChannelUserPrefix    = "ws:user:"
	InternalPrefix       = "ws:"
	EmitterServerID      = "emitter"
	ChannelRoomPattern   = ChannelRoomPrefix + "*"
	ChannelClientPattern = ChannelClientPrefix + "*"
	ChannelUserPattern   = ChannelUserPrefix + "*"
	// ChannelControl carries fleet-wide control messages (Control). Ignis
	// servers neither subscribe to it nor match it with their patterns.
	ChannelControl = "ws:control"
)

// ControlDisconnect is the type of a Control that closes connections.
const ControlDisconnect = "disconnect"

// Control is a fleet-wide control message on ChannelControl. For
// ControlDisconnect exactly one of User and Client is set: every instance
// closes that user's sessions, or that client, with Code and Reason.
type Control struct {
	ServerID string `json:"serverId"`
	Type     string `json:"type"`
	User     string `json:"user,omitempty"`
	Client   string `json:"client,omitempty"`
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
}

// ChannelRoom is the Redis channel of a room.
func ChannelRoom(room string) string { return ChannelRoomPrefix + room }

// ChannelClient is the Redis channel of one client connection.
func ChannelClient(clientID string) string { return ChannelClientPrefix + clientID }

// ChannelUser is the Redis channel of every session of a user.
func ChannelUser(userID string) string { return ChannelUserPrefix + userID }

// ChannelFor returns the channel an envelope of type t for target is published on.
func ChannelFor(t MessageType, target string) string {
	switch t {
	case TypeClient:
		return ChannelClient(target)
	case TypeUser:
		return ChannelUser(target)
	case TypeRoom:
		return ChannelRoom(target)
	default:
		return ChannelBroadcast
	}
}

// ClientState is where a connection is in its lifecycle.
type ClientState string

// The client states. Handshaking is ours: Ignis has no name for the time
// between a successful authenticate and the end of the encryption handshake.
const (
	StateUnauthorized   ClientState = "unauthorized"
	StateAuthenticating ClientState = "authenticating"
	StateHandshaking    ClientState = "handshaking"
	StateAuthenticated  ClientState = "authenticated"
	StateDisconnected   ClientState = "disconnected"
)

// Defaults, matching Ignis' WebSocketDefaults where Ignis has one.
const (
	DefaultPath                  = "/ws"
	DefaultRoom                  = "ws-default"
	DefaultNotificationRoom      = "ws-notification"
	DefaultIdentifier            = "WEBSOCKET_SERVER"
	DefaultMaxPayloadLength      = 128 * 1024
	DefaultIdleTimeout           = 60 * time.Second
	DefaultBackpressureLimit     = 1024 * 1024
	DefaultSendPings             = true
	DefaultAuthTimeout           = 5 * time.Second
	DefaultHeartbeatInterval     = 30 * time.Second
	DefaultHeartbeatTimeout      = 90 * time.Second
	DefaultEncryptedBatchLimit   = 10
	DefaultWriteTimeout          = 10 * time.Second
	DefaultMaxRoomNameLength     = 256
	DefaultMaxRoomsPerRequest    = 100
	DefaultMaxRoomsPerClient     = 1000
	DefaultRedisTimeout          = 30 * time.Second
	DefaultPublishTimeout        = 5 * time.Second
	DefaultTopologyTimeout       = 5 * time.Second
	DefaultMessageRate           = 10000.0
	DefaultMessageBurst          = 20000
	DefaultMaxPendingConnections = 10000
	DefaultDrainBatches          = 10
	DefaultPublishQueue          = 10000
	DefaultCloseGrace            = time.Second
	DefaultRefreshWindow         = 30 * time.Second
	DefaultLogSampleInterval     = 10 * time.Second
	DefaultLogSampleBurst        = 5
	DefaultPresenceRefresh       = 10 * time.Second
	// MaxIDLength is the longest "id" a client frame may carry.
	MaxIDLength = 64
)

// DefaultRooms returns the rooms every authenticated client joins by default.
func DefaultRooms() []string { return []string{DefaultRoom, DefaultNotificationRoom} }

// Close codes. 1001 and the 40xx codes are the Ignis ones; the others are the
// RFC 6455 codes for transport limits.
const (
	CloseGoingAway          = 1001
	ClosePolicyViolation    = 1008
	CloseMessageTooBig      = 1009
	CloseInternalError      = 1011
	CloseInvalidPayload     = 1007
	CloseAuthTimeout        = 4001
	CloseHeartbeatTimeout   = 4002
	CloseAuthFailed         = 4003
	CloseEncryptionRequired = 4004
	CloseDisconnected       = 4005 // the default code of a server-decided Disconnect
	CloseSessionExpired     = 4006
)

// Close reasons sent with the codes above.
const (
	ReasonShutdown           = "Server shutting down"
	ReasonAuthTimeout        = "Authentication timeout"
	ReasonHeartbeatTimeout   = "Heartbeat timeout"
	ReasonAuthFailed         = "Authentication failed"
	ReasonEncryptionRequired = "Encryption required"
	ReasonBackpressure       = "Backpressure limit exceeded"
	ReasonInvalidUTF8        = "Invalid UTF-8"
	ReasonRateLimited        = "Rate limit exceeded"
	ReasonTooManyConnections = "Too many connections"
	ReasonDisconnected       = "Disconnected"
	ReasonSessionExpired     = "Session expired"
)

// Error messages sent to the client in {"event":"error","data":{"message":…}}.
const (
	ErrMsgInvalidFormat        = "Invalid message format"
	ErrMsgAlreadyAuthenticated = "Already authenticated"
	ErrMsgNotAuthenticated     = "Not authenticated"
	ErrMsgAuthFailed           = "Authentication failed"
	ErrMsgAuthError            = "Authentication error"
	ErrMsgHandshakeFailed      = "Encryption handshake failed"
	ErrMsgTooManyRooms         = "Too many rooms"
	ErrMsgRateLimited          = "Rate limit exceeded"
	ErrMsgTooManyConnections   = "Too many connections"
	ErrMsgRefreshFailed        = "Refresh failed"
	ErrMsgEncryptionRequired   = "Encryption required"
	ErrMsgInternal             = "Internal error"
)

// Reasons a room is refused in an ack.
const (
	RefusedInvalidName  = "invalid name"
	RefusedNotAllowed   = "not allowed"
	RefusedTooManyRooms = "too many rooms"
	RefusedNotMember    = "not a member"
)

// AckData is the payload of an ack: the request's event, the rooms it
// applied to and those it refused, with why. Recovered is for joins with
// "since" (history rooms): per room, whether every message after the
// offset was replayed (false: the client must reload its state).
type AckData struct {
	Event     string          `json:"event"`
	Rooms     []string        `json:"rooms"`
	Refused   []RefusedRoom   `json:"refused"`
	Recovered map[string]bool `json:"recovered,omitempty"`
}

// History keys. The room is the hash tag, so that the stream and its epoch
// live in one Redis Cluster slot and one script can touch both.
func HistoryKey(room string) string      { return "ws:history:{" + room + "}" }
func HistoryEpochKey(room string) string { return "ws:history:{" + room + "}:epoch" }

// HistoryScript appends a message to a history room's stream and publishes
// it in one atomic step, so stream order is publish order for every
// publisher (servers and emitters). KEYS: stream, epoch. ARGV: candidate
// epoch (used when the stream has none: a new or lost stream), max
// length, TTL in ms (0: none), oldest stream id to keep by age ("0": no
// age limit), channel, the envelope JSON without its closing brace, event,
// data. It returns the offset "<epoch>:<stream id>".
const HistoryScript = `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'e', ARGV[7], 'd', ARGV[8])
if ARGV[4] ~= '0' then
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
end
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local offset = epoch .. ':' .. id
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ',"offset":"' .. offset .. '"}')
return offset
`

// RefusedRoom is one room of a join or leave that was not applied.
type RefusedRoom struct {
	Room   string `json:"room"`
	Reason string `json:"reason"`
}

// ExpiryData is the payload of session-expiring and refreshed: when the
// session ends, RFC 3339 in UTC (absent in refreshed when it never does).
type ExpiryData struct {
	ExpiresAt string `json:"expiresAt,omitempty"`
}

// Disconnect is a close the server decides: a WebSocket close code and its
// reason. It is an error, so code can return or wrap it. The server package
// names it server.Disconnect.
type Disconnect struct {
	Code   int
	Reason string
}

// Error describes the close.
func (d Disconnect) Error() string {
	return "websocket closed " + strconv.Itoa(d.Code) + " " + d.Reason
}

// ErrorData is the payload of an error event.
type ErrorData struct {
	Message string `json:"message"`
}

// ConnectedData is the payload of the connected event.
type ConnectedData struct {
	ID              string `json:"id"`
	UserID          string `json:"userId,omitempty"`
	Time            string `json:"time"`
	ServerPublicKey string `json:"serverPublicKey,omitempty"`
	Salt            string `json:"salt,omitempty"`
}

// RoomsData is the payload of join and leave requests.
type RoomsData struct {
	Rooms []string `json:"rooms"`
}

// TimeFormat is the layout of ConnectedData.Time: ISO-8601 in UTC with
// milliseconds, as JavaScript's Date.prototype.toISOString prints it.
const TimeFormat = "2006-01-02T15:04:05.000Z"
