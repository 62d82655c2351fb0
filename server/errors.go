package server

import "errors"

// Errors returned by the Helper.
var (
	// ErrNoRedis: Options.Redis is nil and Options.LocalBus is not set.
	ErrNoRedis = errors.New("server: no Redis connection: set Options.Redis (in fx, provide the redis-connection binding), " +
		"or Options.LocalBus to run one instance without Redis")
	// ErrLocalBusWithRedis: both Options.LocalBus and Options.Redis are set.
	ErrLocalBusWithRedis = errors.New("server: Options.LocalBus and Options.Redis are both set: " +
		"choose one (the local bus serves one instance without Redis)")
	// ErrPresenceNeedsRedis: PresenceRooms is set with Options.LocalBus;
	// presence is kept in Redis.
	ErrPresenceNeedsRedis = errors.New("server: Config.PresenceRooms needs Redis (Options.Redis): the local bus keeps no presence")
	// ErrHistoryNeedsRedis: HistoryFor is set with Options.LocalBus;
	// history is kept in Redis streams.
	ErrHistoryNeedsRedis = errors.New("server: Config.HistoryFor needs Redis (Options.Redis): the local bus keeps no history")
	// ErrNoAuthenticate: Options.Authenticate is nil.
	ErrNoAuthenticate = errors.New("server: no authenticate handler: set Options.Authenticate (in fx, provide the authenticate-handler binding)")
	// ErrEncryptionSetup: RequireEncryption without a handshake or transformer.
	ErrEncryptionSetup = errors.New("server: RequireEncryption needs both a handshake handler and an outbound transformer")
	// ErrNotConfigured: the Helper was used before Configure.
	ErrNotConfigured = errors.New("server: not configured: call Configure first (in fx, the app must be started)")
	// ErrClosed: the Helper was shut down.
	ErrClosed = errors.New("server: shut down")
	// ErrClientNotFound: no local client has that id.
	ErrClientNotFound = errors.New("server: client not found")
	// ErrInvalidRoom: a room name is empty, too long or reserved.
	ErrInvalidRoom = errors.New("server: invalid room name")
	// ErrTooManyRooms: the client is in MaxRoomsPerClient rooms already.
	ErrTooManyRooms = errors.New("server: too many rooms for client")
	// ErrEmptyEvent: a send without an event name.
	ErrEmptyEvent = errors.New("server: empty event name")
)
