package client

import (
	"encoding/json"
	"time"
)

// Frame is one frame from the server: {"event","data"?,"id"?,"room"?,"offset"?}.
// Room and Offset are set on messages to history rooms (SPEC §9.5); the
// Client remembers the last Offset per room to recover after a reconnect.
type Frame struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data,omitempty"`
	ID     string          `json:"id,omitempty"`
	Room   string          `json:"room,omitempty"`
	Offset string          `json:"offset,omitempty"`
}

// Decode unmarshals the frame's data into v.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.Data, v) }

// Connected is the server's "connected" event: the session's client id,
// the user id the authenticate handler gave, and the server's time.
// ServerPublicKey and Salt are the server's half of the encryption
// handshake, set when the server runs it; Encrypted tells whether this
// connection is encrypted (Options.Encrypt).
type Connected struct {
	ID              string    `json:"id"`
	UserID          string    `json:"userId"`
	Time            time.Time `json:"time"`
	ServerPublicKey string    `json:"serverPublicKey,omitempty"`
	Salt            string    `json:"salt,omitempty"`
	Encrypted       bool      `json:"-"`
}

// Ack answers a join or leave (SPEC §9.1): the rooms the request was
// applied to and those refused, with why. Recovered is set for the rooms a
// join asked to recover ("since"): true when every message after the
// offset was replayed, false when the app must reload that room's state.
type Ack struct {
	Event     string          `json:"event"`
	Rooms     []string        `json:"rooms"`
	Refused   []Refused       `json:"refused"`
	Recovered map[string]bool `json:"recovered,omitempty"`
}

// PresenceEntry is one member of a presence room, on any instance.
type PresenceEntry struct {
	ClientID string    `json:"clientId"`
	UserID   string    `json:"userId"`
	ServerID string    `json:"serverId"`
	JoinedAt time.Time `json:"joinedAt"`
}

// Presence answers a presence request: the room's members, oldest first,
// and how many distinct users they are.
type Presence struct {
	Room    string          `json:"room"`
	Clients []PresenceEntry `json:"clients"`
	Users   int             `json:"users"`
}

// PresenceEvent is a join or leave notice of a presence room
// (server Config.PresenceEvents).
type PresenceEvent struct {
	Room     string `json:"room"`
	Action   string `json:"action"` // "join" or "leave"
	ClientID string `json:"clientId"`
	UserID   string `json:"userId"`
}

// Gap is the server's notice that its Redis subscription had a gap between
// From and To (issue 14, server option GapNotice): messages to plain rooms
// sent meanwhile may be lost, so the app should refetch its state.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Refreshed is the outcome of a refresh (automatic or Client.Refresh).
// ExpiresAt is the new end of the session (zero: it no longer expires);
// Err is set when the refresh failed (a *ServerError "Refresh failed", an
// error from Options.Credentials, ErrTimeout, …) and the old expiry stays.
type Refreshed struct {
	ExpiresAt time.Time
	Err       error
}

// Disconnected says that a connection ended. Err is why (a *CloseError, a
// network error, ErrEventQueueFull); Reconnecting tells whether the Client
// will try again (after Options.OnReconnect, the app is back) or has
// stopped for good (Client.Done is then closed).
type Disconnected struct {
	Err          error
	Reconnecting bool
}

// Reconnected describes the new session after a lost connection.
type Reconnected struct {
	// Connected is the new session (a new client id).
	Connected Connected
	// Attempts is how many connection attempts it took (1 or more).
	Attempts int
	// Rejoin is the ack of the rejoin of the rooms joined through Join
	// (empty when there were none). Rooms it refused are forgotten.
	Rejoin Ack
	// Unrecovered lists the rejoined rooms whose messages sent while the
	// client was away were not replayed: plain rooms and history rooms
	// the server answered recovered:false for. The app reloads their
	// state; the other rejoined rooms missed nothing.
	Unrecovered []string
}
