// Package emitter sends WebSocket messages from processes that hold no
// sockets (workers, cron jobs, other services): it publishes the same Redis
// envelopes a WebSocket server publishes, and every server of the fleet
// delivers them to its local clients. It is the Go counterpart of Ignis'
// WebSocketEmitter and speaks its wire format, so Ignis servers on the same
// Redis deliver these messages too.
//
// An Emitter starts no goroutine of its own and is safe for concurrent use.
// Delivery is fire-and-forget, as with Redis Pub/Sub: a nil error means Redis
// accepted the message, not that any client received it.
package emitter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// Errors returned by the Emitter; test with errors.Is.
var (
	// ErrNoRedis means Options.Redis is nil.
	ErrNoRedis = errors.New("emitter: Options.Redis is required")
	// ErrClosed means the Emitter was closed.
	ErrClosed = errors.New("emitter: closed")
	// ErrEmptyTarget means the client id, user id or room is empty.
	ErrEmptyTarget = errors.New("emitter: empty target")
	// ErrEmptyEvent means the event name is empty.
	ErrEmptyEvent = errors.New("emitter: empty event")
)

// Options configures an Emitter.
type Options struct {
	// Redis is the connection the envelopes are published on; required. It
	// must reach the Redis the WebSocket servers subscribe to (single node,
	// Cluster or Sentinel all work). The Emitter does not close it.
	Redis redis.UniversalClient

	// Logger receives debug lines for each publish; default: none
	// (zap.NewNop). The Emitter names it "emitter".
	Logger *zap.Logger

	// Sharded publishes with SPUBLISH (Redis 7 sharded Pub/Sub) instead of
	// PUBLISH, on the same channels with the same envelope, for a fleet of
	// servers in sharded routing mode. Such messages reach only sharded
	// subscribers: not Ignis servers nor servers in pattern or interest
	// mode. Default false.
	Sharded bool

	// HistoryFor must be the servers' server.Config.HistoryFor (SPEC
	// §9.5): ToRoom to a room it gives a size > 0 appends the message to
	// the room's stream and publishes it in one script call, exactly as
	// the servers do, so emitter and server messages share one order and
	// clients can recover them. Not available with Sharded.
	HistoryFor func(room string) (size int, ttl time.Duration)
}

// Emitter publishes WebSocket messages on Redis.
type Emitter struct {
	rdb        redis.UniversalClient
	sharded    bool
	historyFor func(room string) (int, time.Duration)
	ownsRedis  bool
	log        *zap.Logger

	// mu guards closed and the Add side of inflight, so that Close can wait
	// for the sends it let through before it closes an owned client.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	closeOnce sync.Once
	closeErr  error // set inside closeOnce
}

// New returns an Emitter publishing on o.Redis.
func New(o Options) (*Emitter, error) {
	if o.Redis == nil {
		return nil, ErrNoRedis
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if o.HistoryFor != nil && o.Sharded {
		return nil, errors.New("emitter: HistoryFor is not available with Sharded")
	}
	return &Emitter{rdb: o.Redis, sharded: o.Sharded, historyFor: o.HistoryFor, log: log.Named("emitter")}, nil
}

// NewFromURL connects to the Redis that rawURL names (any form that
// redisconn.FromURL accepts: redis://, rediss://, redis+cluster://,
// redis+sentinel://) and returns an Emitter that owns the connection: Close
// closes it. logger may be nil. It does not contact Redis; the first send does.
func NewFromURL(rawURL string, logger *zap.Logger) (*Emitter, error) {
	rdb, err := redisconn.FromURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("emitter: %w", err)
	}
	e, err := New(Options{Redis: rdb, Logger: logger})
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	e.ownsRedis = true
	return e, nil
}

// ToClient sends event with data to one connection, by its client id,
// wherever in the fleet it is connected.
func (e *Emitter) ToClient(ctx context.Context, clientID, event string, data any) error {
	if clientID == "" {
		return fmt.Errorf("%w: client id", ErrEmptyTarget)
	}
	return e.publish(ctx, protocol.TypeClient, clientID, event, data, nil)
}

// ToUser sends event with data to every connection of a user, on every
// server.
func (e *Emitter) ToUser(ctx context.Context, userID, event string, data any) error {
	if userID == "" {
		return fmt.Errorf("%w: user id", ErrEmptyTarget)
	}
	return e.publish(ctx, protocol.TypeUser, userID, event, data, nil)
}

// ToRoom sends event with data to every authenticated member of room, on
// every server, except the connections whose client ids are in exclude.
func (e *Emitter) ToRoom(ctx context.Context, room, event string, data any, exclude ...string) error {
	if room == "" {
		return fmt.Errorf("%w: room", ErrEmptyTarget)
	}
	return e.publish(ctx, protocol.TypeRoom, room, event, data, exclude)
}

// Broadcast sends event with data to every authenticated connection of the
// fleet except the client ids in exclude.
func (e *Emitter) Broadcast(ctx context.Context, event string, data any, exclude ...string) error {
	return e.publish(ctx, protocol.TypeBroadcast, "", event, data, exclude)
}

// DisconnectUser closes every session of a user on every server that runs
// this component (SPEC §9.2: a control message on ws:control; Ignis servers
// ignore it). d.Code must be 4000–4999; the zero Disconnect means 4005
// "Disconnected". A nil error means Redis took the message.
func (e *Emitter) DisconnectUser(ctx context.Context, userID string, d protocol.Disconnect) error {
	if userID == "" {
		return fmt.Errorf("%w: user id", ErrEmptyTarget)
	}
	return e.control(ctx, protocol.Control{Type: protocol.ControlDisconnect, User: userID}, d)
}

// DisconnectClient closes one connection, by its client id, on whichever
// server holds it. See DisconnectUser.
func (e *Emitter) DisconnectClient(ctx context.Context, clientID string, d protocol.Disconnect) error {
	if clientID == "" {
		return fmt.Errorf("%w: client id", ErrEmptyTarget)
	}
	return e.control(ctx, protocol.Control{Type: protocol.ControlDisconnect, Client: clientID}, d)
}

// ErrInvalidDisconnect means a Disconnect's code is outside 4000–4999 or
// its reason does not fit a close frame (123 bytes).
var ErrInvalidDisconnect = errors.New("emitter: invalid disconnect")

func (e *Emitter) control(ctx context.Context, m protocol.Control, d protocol.Disconnect) error {
	if d == (protocol.Disconnect{}) {
		d = protocol.Disconnect{Code: protocol.CloseDisconnected, Reason: protocol.ReasonDisconnected}
	}
	if d.Code < 4000 || d.Code > 4999 || len(d.Reason) > protocol.MaxCloseReason || !utf8.ValidString(d.Reason) {
		return fmt.Errorf("%w: code %d, reason of %d bytes", ErrInvalidDisconnect, d.Code, len(d.Reason))
	}
	m.ServerID, m.Code, m.Reason = protocol.EmitterServerID, d.Code, d.Reason
	// The same codec as the servers' (helpers/protocol).
	payload, err := protocol.EncodeControl(m)
	if err != nil {
		return fmt.Errorf("emitter: %w", err)
	}
	return e.publishPayload(ctx, protocol.ChannelControl, payload, protocol.ControlDisconnect)
}

// publish encodes one envelope and publishes it on its channel.
func (e *Emitter) publish(ctx context.Context, typ protocol.MessageType, target, event string, data any, exclude []string) error {
	if event == "" {
		return ErrEmptyEvent
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("emitter: encode data of %q: %w", event, err)
	}
	// The same codec and channel naming as the servers' (helpers/protocol).
	payload, err := protocol.EncodeEnvelope(protocol.Envelope{
		ServerID: protocol.EmitterServerID,
		Type:     typ,
		Target:   target,
		Event:    event,
		Data:     raw,
		Exclude:  exclude,
	})
	if err != nil {
		return fmt.Errorf("emitter: %q: %w", event, err)
	}

	if typ == protocol.TypeRoom && e.historyFor != nil {
		if size, ttl := e.historyFor(target); size > 0 {
			return e.publishHistory(ctx, target, event, raw, payload, size, ttl)
		}
	}
	return e.publishPayload(ctx, protocol.ChannelFor(typ, target), payload, event)
}

var historyScript = redis.NewScript(protocol.HistoryScript)

// publishHistory appends to the room's stream and publishes, in one script
// call (protocol.HistoryScript), as the servers do.
func (e *Emitter) publishHistory(ctx context.Context, room, event string, data, envelope []byte, size int, ttl time.Duration) error {
	if !e.enter() {
		return ErrClosed
	}
	defer e.inflight.Done()
	minID := "0"
	if ttl > 0 {
		minID = strconv.FormatInt(time.Now().Add(-ttl).UnixMilli(), 10)
	}
	var epoch [8]byte
	_, _ = rand.Read(epoch[:])
	offset, err := historyScript.Run(ctx, e.rdb,
		[]string{protocol.HistoryKey(room), protocol.HistoryEpochKey(room)},
		hex.EncodeToString(epoch[:]), size, ttl.Milliseconds(), minID, protocol.ChannelRoom(room),
		envelope[:len(envelope)-1], event, string(data),
	).Text()
	if err != nil {
		return fmt.Errorf("emitter: publish %q to history room %q: %w", event, room, err)
	}
	if ce := e.log.Check(zap.DebugLevel, "published to history"); ce != nil {
		ce.Write(zap.String("room", room), zap.String("event", event), zap.String("offset", offset))
	}
	return nil
}

// publishPayload publishes payload on channel; event names it in errors
// and logs.
func (e *Emitter) publishPayload(ctx context.Context, channel string, payload []byte, event string) error {
	if !e.enter() {
		return ErrClosed
	}
	defer e.inflight.Done()

	var cmd *redis.IntCmd
	if e.sharded {
		cmd = e.rdb.SPublish(ctx, channel, payload)
	} else {
		cmd = e.rdb.Publish(ctx, channel, payload)
	}
	receivers, err := cmd.Result()
	if err != nil {
		return fmt.Errorf("emitter: publish %q to %s: %w", event, channel, err)
	}
	if ce := e.log.Check(zap.DebugLevel, "published"); ce != nil {
		ce.Write(
			zap.String("channel", channel),
			zap.String("event", event),
			zap.Int64("subscribers", receivers),
		)
	}
	return nil
}

// enter registers one in-flight send, or reports false once closed.
func (e *Emitter) enter() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.inflight.Add(1)
	return true
}

// Close stops the Emitter: later sends return ErrClosed. It waits for the
// sends already under way, then closes the Redis client if the Emitter owns
// it (NewFromURL); a client passed in Options is left open. Close is
// idempotent and returns the same result every time.
func (e *Emitter) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()

		e.inflight.Wait()
		if e.ownsRedis {
			if err := e.rdb.Close(); err != nil {
				e.closeErr = fmt.Errorf("emitter: close redis: %w", err)
			}
		}
	})
	return e.closeErr
}
