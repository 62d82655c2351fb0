package server

import (
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Config holds every tunable of the helper. A zero field takes the default
// written in its comment, so a partial Config is always valid; New refuses
// a negative or absurd value (Validate) instead of replacing it: every
// number must be zero or positive and every duration zero or at least 1ms
// (a bare 5000 is 5µs in Go), besides the bounds a field states. In JSON a
// duration is integer milliseconds as in Ignis ({"authTimeout":5000}) or a
// Go duration string ("5s"). An option that can be turned off accepts Off
// ("off" or -1 in JSON) and says "Off:"; the others refuse it.
type Config struct {
	// Identifier names the helper in logs. Default "WEBSOCKET_SERVER".
	Identifier string `json:"identifier,omitempty"`
	// Path is the upgrade route the fx component registers. Default "/ws".
	// The helper itself serves whatever path it is mounted on.
	Path string `json:"path,omitempty"`
	// DefaultRooms are joined by every client after authentication.
	// nil means ["ws-default", "ws-notification"]; an empty non-nil slice
	// means none.
	DefaultRooms []string `json:"defaultRooms,omitempty"`
	// AuthTimeout is how long a new connection may stay unauthenticated.
	// The authenticate call plus the encryption handshake get 3×AuthTimeout.
	// Default 5s.
	AuthTimeout time.Duration `json:"authTimeout,omitempty"`
	// HeartbeatInterval is the period of the heartbeat sweep. Default 30s.
	HeartbeatInterval time.Duration `json:"heartbeatInterval,omitempty"`
	// HeartbeatTimeout closes (4002) authenticated clients silent for longer.
	// Default 90s.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	// RequireEncryption runs the handshake after authentication and sends
	// every application message to the client through the OutboundTransformer.
	// Default false.
	RequireEncryption bool `json:"requireEncryption,omitempty"`
	// EncryptedBatchLimit caps the transformer calls in flight for one
	// fan-out. Default 10.
	EncryptedBatchLimit int `json:"encryptedBatchLimit,omitempty"`

	// MaxPayloadLength is the largest frame read from a client, in bytes;
	// a larger one closes the connection with 1009. Default 128 KiB;
	// allowed 1 KiB to 1 GiB (each connection may hold one such frame).
	MaxPayloadLength int64 `json:"maxPayloadLength,omitempty"`
	// IdleTimeout closes a connection from which nothing (not even a pong)
	// arrived for this long. Default 60s.
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// SendPings sends protocol ping frames every IdleTimeout/2 so that
	// intermediaries keep the connection and dead peers are found.
	// nil means true. Off: server.Bool(false), in JSON false (or "off").
	SendPings *bool `json:"sendPings,omitempty"`
	// PerMessageDeflate negotiates permessage-deflate with clients that offer
	// it. Default false.
	PerMessageDeflate bool `json:"perMessageDeflate,omitempty"`
	// BackpressureLimit bounds the bytes queued for one client. Over it the
	// message is dropped for that client (counted), or the connection is
	// closed when CloseOnBackpressureLimit is set. Default 1 MiB; at least
	// 1 KiB, below which nearly every message would be dropped.
	BackpressureLimit int `json:"backpressureLimit,omitempty"`
	// CloseOnBackpressureLimit closes a client over BackpressureLimit with
	// 1008 instead of dropping messages. Default false.
	CloseOnBackpressureLimit bool `json:"closeOnBackpressureLimit,omitempty"`
	// WriteTimeout bounds one write to a socket; a client that does not take
	// a frame within it is disconnected. Default 10s.
	WriteTimeout time.Duration `json:"writeTimeout,omitempty"`
	// AllowedOrigins lists the Origin header values accepted besides the
	// request's own host ("*" accepts any). Ignored when CheckOrigin is set.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
	// CheckOrigin replaces the origin policy. Default: same origin (or no
	// Origin header, as non-browser clients send) plus AllowedOrigins.
	CheckOrigin func(r *http.Request) bool `json:"-"`

	// MaxRoomsPerRequest caps the names in one join or leave request.
	// Default 100.
	MaxRoomsPerRequest int `json:"maxRoomsPerRequest,omitempty"`
	// MaxRoomsPerClient caps the rooms one client is in, counting its own-id
	// room and the default rooms. Default 1000; at least 1+len(DefaultRooms)
	// so that the default rooms fit.
	MaxRoomsPerClient int `json:"maxRoomsPerClient,omitempty"`

	// RedisTimeout bounds how long Configure waits for the Redis
	// subscriptions to be confirmed. Default 30s.
	RedisTimeout time.Duration `json:"redisTimeout,omitempty"`
	// PublishTimeout bounds one Redis publish round trip (one PUBLISH or
	// one pipeline of them); a publish that takes longer fails with a
	// timeout. Default 5s.
	PublishTimeout time.Duration `json:"publishTimeout,omitempty"`
	// TopologyTimeout bounds one reload of the Redis Cluster slot map, which
	// sharded mode does when a slot moved or a node refused a channel.
	// Default 5s.
	TopologyTimeout time.Duration `json:"topologyTimeout,omitempty"`

	// RedisRouting is "interest" (default): subscribe only to the channels
	// of local rooms, users and clients plus ws:broadcast; or "pattern":
	// PSUBSCRIBE ws:room:*, ws:client:*, ws:user:* like Ignis, so every
	// instance receives every message. Both read and write the same
	// channels and envelope, so they mix with each other and with Ignis.
	// Interest mode has one trade-off: a message published in the moment
	// between a local join and Redis confirming the new channel is missed
	// by this instance.
	//
	// "sharded" is interest mode on Redis Cluster's sharded Pub/Sub, for
	// clusters where PUBLISH, which every master forwards to every other,
	// costs too much: it publishes with SPUBLISH and subscribes with
	// SSUBSCRIBE, same channel names and envelope, so a message travels
	// only to the master of its channel's slot. It needs Options.Redis to
	// be a *redis.ClusterClient (New returns ErrShardedNeedsCluster
	// otherwise), and Redis 7. The price is compatibility: sharded messages
	// are not seen by SUBSCRIBE or PSUBSCRIBE, nor PUBLISH messages by
	// SSUBSCRIBE, so every instance of a sharded fleet must be sharded: it
	// does not interoperate with Ignis servers, with instances in pattern
	// or interest mode, or with PUBLISH-based emitters (use
	// emitter.Options.Sharded). When a slot moves to another master, its
	// channels are subscribed again there; messages published meanwhile
	// are missed.
	RedisRouting string `json:"redisRouting,omitempty"`

	// AsyncPublish makes Send and the Publish methods return once the
	// message is queued for Redis instead of when Redis has taken it;
	// failures are then logged and counted (Stats.RedisPublishErrors), not
	// returned. Either way concurrent publishes share pipelined round trips.
	// Default false.
	AsyncPublish bool `json:"asyncPublish,omitempty"`
	// PublishQueue bounds the publishes waiting for Redis; past it a publish
	// fails with ErrPublishQueueFull. Default 10000.
	PublishQueue int `json:"publishQueue,omitempty"`

	// MessageRate is how many frames per second one client may send on
	// average, and MessageBurst how many it may send at once. A client over
	// the limit gets {"event":"error","data":{"message":"Rate limit
	// exceeded"}} and is closed with 1008. Defaults 10000/s and 20000.
	// Off: MessageRate Off (exactly -1; "off" in JSON) turns the limit off;
	// other negative values are refused.
	MessageRate  float64 `json:"messageRate,omitempty"`
	MessageBurst int     `json:"messageBurst,omitempty"`
	// MaxPendingConnections caps the connections that have not finished
	// authenticating; past it upgrades are refused with 503. Default 10000.
	// Off: Off (exactly -1; "off" in JSON) means no cap.
	MaxPendingConnections int `json:"maxPendingConnections,omitempty"`
	// Pollers is how many epoll instances, each with one goroutine, wait
	// for input on Linux. A connection read this way has no goroutine and
	// no read buffer while it is idle; one gets both from a pool while it
	// has bytes to process. Connections with permessage-deflate and TLS
	// connections (not a *net.TCPConn after the upgrade) are read by a
	// goroutine of their own, as every connection is on other systems.
	// Default 1 (one is enough to dispatch a few hundred thousand events
	// per second); at most 256. Off: every connection gets a reader
	// goroutine.
	Pollers int `json:"pollers,omitempty"`
	// MaxConnectionsPerUser caps the authenticated sessions of one user on
	// this instance; one more is refused with "Too many connections" and
	// closed with 1008. Default 0: no cap. Off: Off also means no cap.
	MaxConnectionsPerUser int `json:"maxConnectionsPerUser,omitempty"`
	// DrainWindow spreads the 1001 closes of Shutdown over this long, in
	// DrainBatches equal batches, so that clients do not all reconnect to
	// the other instances at the same instant. Default 0: all at once, as
	// Ignis does. Off: Off is the same as 0. Otherwise at least 1ms.
	// Shutdown's context still bounds the whole drain.
	DrainWindow time.Duration `json:"drainWindow,omitempty"`
	// DrainBatches is the number of batches of a DrainWindow. Default 10.
	DrainBatches int `json:"drainBatches,omitempty"`
	// CloseGrace is how long a connection the server closed waits for the
	// client's answering close frame before the socket is dropped. Shutdown
	// waits at most this long for clients that never answer (and never
	// longer than its context allows). Default 1s.
	CloseGrace time.Duration `json:"closeGrace,omitempty"`

	// RefreshWindow is how long before AuthResult.ExpiresAt the client is
	// sent "session-expiring" so that it can "refresh" in time. Default 30s.
	RefreshWindow time.Duration `json:"refreshWindow,omitempty"`
	// RequireEncryptedInbound makes an encrypted client send every frame
	// after "connected" (except heartbeat) inside an "encrypted" envelope;
	// a plaintext frame is answered with "Encryption required" and dropped.
	// Default false, so Ignis clients, which send plaintext, keep working.
	RequireEncryptedInbound bool `json:"requireEncryptedInbound,omitempty"`
	// LogSampleInterval is the period of log sampling for events a client
	// can cause at will (authentication failures, rate-limit and oversize
	// closes, origin refusals, auth timeouts, handler errors): per kind,
	// the first LogSampleBurst lines of an interval are written and the
	// rest are counted in one summary line at its end. Default 10s.
	LogSampleInterval time.Duration `json:"logSampleInterval,omitempty"`
	// LogSampleBurst is how many lines of one kind an interval writes.
	// Default 5.
	LogSampleBurst int `json:"logSampleBurst,omitempty"`

	// PresenceRooms turns fleet-wide presence on for the rooms it returns
	// true for (SPEC §9.4): each instance records its members of such rooms
	// in Redis (hash ws:presence:{room}), so Helper.Presence answers for
	// the whole fleet and members may ask with a "presence" request. It is
	// called from the presence worker, never with a lock held, and must be
	// fast and pure. nil (default): presence off.
	PresenceRooms func(room string) bool `json:"-"`
	// HistoryFor turns history on for a room (SPEC §9.5): size > 0 keeps
	// the last size messages (and, with ttl > 0, none older than ttl) in
	// the Redis stream ws:history:{room}. Messages to such a room that go
	// through Redis (PublishToRoom, Send, emitters given the same option)
	// are appended and published in one script call, carry "room" and
	// "offset" in their frames, and can be recovered with a join's
	// "since". Local-only sends (SendToRoom, Broadcast) are not recorded.
	// Not available with RedisRouting "sharded". Called without locks held;
	// must be fast and pure. nil (default): no history.
	HistoryFor func(room string) (size int, ttl time.Duration) `json:"-"`

	// GapNotice sends every authenticated local client
	// {"event":"gap","data":{"from","to"}} (RFC 3339) after this instance's
	// Redis subscription comes back from an outage, so clients can refetch
	// state: what was published meanwhile to plain rooms, users, clients
	// and broadcasts did not reach this instance (history rooms are caught
	// up instead). Default false, so Ignis clients see nothing new.
	GapNotice bool `json:"gapNotice,omitempty"`

	// PresenceEvents sends the members of a presence room
	// {"event":"presence","data":{"room","action":"join"|"leave","clientId","userId"}}
	// when a client joins or leaves it, on any instance. Default false.
	PresenceEvents bool `json:"presenceEvents,omitempty"`
	// PresenceRefresh is how often an instance renews its liveness key and
	// rewrites its presence entries; the entries of an instance that died
	// disappear within twice this. Default 10s.
	PresenceRefresh time.Duration `json:"presenceRefresh,omitempty"`
}

// Bool returns a pointer to v, for Config.SendPings.
func Bool(v bool) *bool { return &v }

// Options is what New needs: the Config, the Redis connection (or the
// local bus), a logger and the application's callbacks. Only Redis (or
// LocalBus) and Authenticate are required.
type Options struct {
	Config

	// Redis carries the Pub/Sub traffic between instances. Required unless
	// LocalBus is set.
	Redis redis.UniversalClient
	// LocalBus runs one instance without Redis: messages reach this
	// instance's clients only, publishes succeed at once and reach nobody
	// else, fleet-wide disconnects close local clients only, and Health is
	// nil once configured. Config.RedisRouting, RedisTimeout,
	// PublishTimeout, TopologyTimeout, AsyncPublish and PublishQueue do not
	// apply. Not with Redis (New returns ErrLocalBusWithRedis).
	LocalBus bool
	// Logger receives the helper's logs, named by Identifier. Default: a no-op logger.
	Logger *zap.Logger

	// Authenticate decides who a client is. Required.
	Authenticate AuthenticateFunc
	// ValidateRoom decides which requested rooms a client may join. Without
	// it every join request is refused.
	ValidateRoom ValidateRoomFunc
	// ClientConnected is called after a client is authenticated and has
	// received "connected".
	ClientConnected ClientConnectedFunc
	// ClientDisconnected is called once per connection after it is removed
	// from every index.
	ClientDisconnected ClientDisconnectedFunc
	// Message receives every non-system event from authenticated clients.
	Message MessageHandler
	// OutboundTransformer rewrites application messages to encrypted clients.
	OutboundTransformer OutboundTransformer
	// Handshake runs after authentication when RequireEncryption is set.
	Handshake HandshakeFunc
	// DisconnectHooks run after ClientDisconnected, once per connection, in
	// order. They are for components that keep per-client state (the
	// encryption pair's keys) so that ClientDisconnected stays the app's.
	DisconnectHooks []ClientDisconnectedFunc
	// Observer, when set, receives latency and queue measurements (see
	// package metrics).
	Observer Observer
	// InboundTransformer, when set, receives every "encrypted" frame from an
	// encrypted client and returns the frame it stands for, which is then
	// routed like any other frame.
	InboundTransformer InboundTransformer
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Identifier == "" {
		c.Identifier = protocol.DefaultIdentifier
	}
	if c.Path == "" {
		c.Path = protocol.DefaultPath
	}
	if c.DefaultRooms == nil {
		c.DefaultRooms = protocol.DefaultRooms()
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = protocol.DefaultAuthTimeout
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = protocol.DefaultHeartbeatInterval
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = protocol.DefaultHeartbeatTimeout
	}
	if c.EncryptedBatchLimit <= 0 {
		c.EncryptedBatchLimit = protocol.DefaultEncryptedBatchLimit
	}
	if c.MaxPayloadLength <= 0 {
		c.MaxPayloadLength = protocol.DefaultMaxPayloadLength
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = protocol.DefaultIdleTimeout
	}
	if c.SendPings == nil {
		c.SendPings = Bool(protocol.DefaultSendPings)
	}
	if c.BackpressureLimit <= 0 {
		c.BackpressureLimit = protocol.DefaultBackpressureLimit
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = protocol.DefaultWriteTimeout
	}
	if c.MaxRoomsPerRequest <= 0 {
		c.MaxRoomsPerRequest = protocol.DefaultMaxRoomsPerRequest
	}
	if c.MaxRoomsPerClient <= 0 {
		c.MaxRoomsPerClient = protocol.DefaultMaxRoomsPerClient
	}
	if c.RedisTimeout <= 0 {
		c.RedisTimeout = protocol.DefaultRedisTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = protocol.DefaultPublishTimeout
	}
	if c.TopologyTimeout <= 0 {
		c.TopologyTimeout = protocol.DefaultTopologyTimeout
	}
	if c.RedisRouting == "" {
		c.RedisRouting = RoutingInterest
	}
	if c.MessageRate == 0 {
		c.MessageRate = protocol.DefaultMessageRate
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = protocol.DefaultMessageBurst
	}
	if c.Pollers == 0 {
		c.Pollers = defaultPollers
	}
	if c.MaxPendingConnections == 0 {
		c.MaxPendingConnections = protocol.DefaultMaxPendingConnections
	}
	if c.PublishQueue <= 0 {
		c.PublishQueue = protocol.DefaultPublishQueue
	}
	if c.DrainBatches <= 0 {
		c.DrainBatches = protocol.DefaultDrainBatches
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = protocol.DefaultCloseGrace
	}
	if c.RefreshWindow <= 0 {
		c.RefreshWindow = protocol.DefaultRefreshWindow
	}
	if c.LogSampleInterval <= 0 {
		c.LogSampleInterval = protocol.DefaultLogSampleInterval
	}
	if c.PresenceRefresh <= 0 {
		c.PresenceRefresh = protocol.DefaultPresenceRefresh
	}
	if c.LogSampleBurst <= 0 {
		c.LogSampleBurst = protocol.DefaultLogSampleBurst
	}
	return c
}

// WithDefaults returns c with every zero field set to its default, as New
// would use it.
func (c Config) WithDefaults() Config { return c.withDefaults() }
