package client

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Off turns off an option that can be turned off (it says "Off:" in its
// comment), as server.Off does for the server's options.
const Off = -1

// Defaults of Options and Reconnect.
const (
	DefaultHeartbeatInterval = 25 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultConnectTimeout    = 20 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultReadTimeout       = 90 * time.Second
	DefaultCloseGrace        = time.Second
	DefaultEventQueue        = 1024
	DefaultSendQueue         = 256
	DefaultReconnectMin      = 500 * time.Millisecond
	DefaultReconnectMax      = 30 * time.Second
)

// Options configure a Client. Every field is optional; a zero field takes
// the default written in its comment.
type Options struct {
	// Credentials returns the data of the "authenticate" frame (marshalled
	// to JSON), e.g. map[string]string{"token": t}. It is called for every
	// connection (the first one and each reconnect) and for every refresh,
	// so it can hand out a fresh token each time. An error fails that
	// attempt (Dial returns it; a reconnect tries again with backoff).
	// Default: nil, authenticate is sent without data (for servers that
	// authenticate from Header).
	Credentials func(ctx context.Context) (any, error)
	// Header is sent with the upgrade request (cookies, Authorization,
	// Origin). Default none.
	Header http.Header
	// Dialer opens the WebSocket. Default: a websocket.Dialer with
	// ConnectTimeout as its handshake timeout and the proxy of the
	// environment (websocket.DefaultDialer's settings).
	Dialer Dialer

	// Encrypt runs the per-connection encryption of server/encryption
	// (SPEC §5, the JS client's encrypt option): every connection gets a
	// fresh P-256 key pair whose public key goes into the authenticate
	// payload as "publicKey" (so Credentials must return a JSON object, or
	// nil; a "publicKey" of its own is replaced); "connected" must carry
	// serverPublicKey and salt, else the client refuses the connection
	// (ErrEncryptionHandshake); then every frame but heartbeat travels in
	// an "encrypted" envelope both ways, and plaintext application frames
	// from the server are dropped. Default false.
	Encrypt bool
	// ServerPublicKey pins the server's public key (standard base64 of the
	// raw P-256 point, server/encryption's Pair.ServerPublicKey): a server
	// that answers with another key is refused (ErrServerKeyMismatch) and
	// the client stops. Needs Encrypt. Default "": any key is accepted,
	// which does not protect against an active man in the middle.
	ServerPublicKey string

	// HeartbeatInterval is the period of the "heartbeat" frames that keep
	// the session alive on the server (server HeartbeatTimeout, default
	// 90s). Default 25s. Off: none.
	HeartbeatInterval time.Duration
	// RequestTimeout bounds the wait for the answer to Join, Leave,
	// Request, Presence and Refresh, besides their ctx. Default 10s.
	RequestTimeout time.Duration
	// ConnectTimeout bounds one connection attempt: dial, upgrade, and
	// authenticate until "connected" (the server gives its handler
	// 3×AuthTimeout, 15s by default). Default 20s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one frame write; a server that does not take it
	// in time ends the connection. Default 10s.
	WriteTimeout time.Duration
	// ReadTimeout ends a connection from which nothing (no frame, no
	// ping) arrived for this long (up to a sixteenth longer: the deadline
	// is not moved for every frame), so that a peer that vanished without
	// a close is noticed and reconnected. The server pings every
	// IdleTimeout/2 (30s) by default. Default 90s. Off: wait forever.
	ReadTimeout time.Duration
	// CloseGrace is how long Close (and a connection the client drops)
	// waits for the server's answering close frame. Default 1s.
	CloseGrace time.Duration
	// SendQueue bounds the frames waiting for the connection's writer;
	// past it Send and the requests fail with ErrSendQueueFull. Default 256.
	SendQueue int
	// EventQueue bounds the frames waiting for the handlers (OnEvent and
	// the other On… callbacks run one at a time on one goroutine). The
	// reader never waits for a handler: when a frame finds the queue
	// full, the client drops the connection (close 1008, cause
	// ErrEventQueueFull) and reconnects like after any loss, so a slow
	// consumer costs a reconnect, never an unbounded memory or a stalled
	// reader, and history rooms recover from the last frame queued.
	// Default 1024.
	EventQueue int

	// Reconnect is the policy after an unexpected close. Default: on,
	// 500ms–30s exponential backoff with full jitter, unlimited attempts.
	Reconnect Reconnect
	// AutoRefresh answers "session-expiring" by calling Credentials and
	// sending "refresh"; the outcome goes to OnRefresh. nil means true.
	// Off: client.Bool(false) (then call Client.Refresh from
	// OnSessionExpiring).
	AutoRefresh *bool

	// Logger receives the client's logs, named "wsclient". Default: none.
	Logger *zap.Logger

	// Handlers. They run one at a time, in arrival order, on the Client's
	// handler goroutine (never on the reader); a handler may call every
	// Client method, Close included. A panic in one is recovered and
	// logged. All default to nil (ignored).

	// OnEvent receives every application frame: every event that is not
	// a protocol event (connected, error, ack, heartbeat, presence,
	// session-expiring, refreshed, gap) and is not the answer to a
	// Request.
	OnEvent func(Frame)
	// OnFrame, when set, receives the application frames instead of
	// OnEvent, on the connection's reader goroutine as each is read: no
	// queue and no hand-over to the handler goroutine, for consumers to
	// which that hop per frame is dear (a load generator, a relay of many
	// streams). Frames come in wire order with the answers: a request
	// returns only after OnFrame returned for every frame read before its
	// answer. They are not ordered with the other handlers, which still
	// run on the handler goroutine. OnFrame must not block: the
	// connection reads nothing else (answers, pings, close) meanwhile, so
	// hand slow work to a goroutine of your own. It may call Send; a
	// Request, Join, Leave, Presence or Refresh made from it waits for an
	// answer only this goroutine could read, and fails with ErrTimeout;
	// Close waits for this goroutine, so call it as go c.Close().
	// EventQueue does not apply; the offset of a history-room frame is
	// recorded once OnFrame returns. A panic is recovered and logged.
	// Default nil.
	OnFrame func(Frame)
	// OnPresence receives the join/leave notices of presence rooms.
	OnPresence func(PresenceEvent)
	// OnGap receives the server's "gap" notices (issue 14).
	OnGap func(Gap)
	// OnSessionExpiring is told when the session will end
	// (AuthResult.ExpiresAt on the server), before any automatic refresh.
	OnSessionExpiring func(expiresAt time.Time)
	// OnRefresh receives the outcome of each automatic refresh.
	OnRefresh func(Refreshed)
	// OnServerError receives "error" events that answer no request
	// (e.g. "Rate limit exceeded" before a 1008 close).
	OnServerError func(*ServerError)
	// OnDisconnect is called when a connection ends, whether or not the
	// Client will reconnect; not for Close.
	OnDisconnect func(Disconnected)
	// OnReconnect is called once a new connection is authenticated and
	// its rooms are rejoined. Messages the server replays for a recovered
	// room may reach OnEvent before it.
	OnReconnect func(Reconnected)
}

// Reconnect is the reconnect policy: attempt n (from 0) waits a random
// duration in [0, min(Max, Min·2ⁿ)) — exponential backoff with full jitter,
// so that a fleet of clients dropped at once (a server restart) comes back
// spread out rather than in waves.
type Reconnect struct {
	// Min is the backoff of the first attempt. Default 500ms.
	Min time.Duration
	// Max caps the backoff. Default 30s.
	Max time.Duration
	// MaxAttempts stops after this many failed attempts in a row (the
	// Client then stops with ErrReconnectGaveUp). Default 0: unlimited.
	// Off: never reconnect (the first unexpected close stops the Client).
	MaxAttempts int
	// ShouldRetry decides from the close whether to reconnect at all.
	// Default DefaultShouldRetry.
	ShouldRetry func(*CloseError) bool
}

// Bool returns a pointer to v, for Options.AutoRefresh.
func Bool(v bool) *bool { return &v }

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = DefaultCloseGrace
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.EventQueue <= 0 {
		o.EventQueue = DefaultEventQueue
	}
	if o.Reconnect.Min <= 0 {
		o.Reconnect.Min = DefaultReconnectMin
	}
	if o.Reconnect.Max <= 0 {
		o.Reconnect.Max = DefaultReconnectMax
	}
	o.Reconnect.Max = max(o.Reconnect.Max, o.Reconnect.Min)
	if o.Reconnect.ShouldRetry == nil {
		o.Reconnect.ShouldRetry = DefaultShouldRetry
	}
	if o.AutoRefresh == nil {
		o.AutoRefresh = Bool(true)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.Logger = o.Logger.Named("wsclient")
	return o
}
