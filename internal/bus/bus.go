// Package bus carries messages between the instances of a WebSocket fleet.
// The server depends on the Bus interface only; the implementations are
// the three Redis Pub/Sub modes (pattern, interest, sharded) and a local
// bus for a single instance without Redis.
//
// What each mode subscribes:
//
//   - pattern: SUBSCRIBE ws:broadcast ws:control and PSUBSCRIBE ws:room:*
//     ws:client:* ws:user:* at start, as Ignis does; Want and Unwant do
//     nothing and Await returns at once (every channel is always live).
//   - interest: SUBSCRIBE ws:broadcast ws:control at start, then exactly the
//     wanted channels, batched by one goroutine; Await waits for Redis'
//     confirmations.
//   - sharded: SSUBSCRIBE on Redis Cluster, every channel on the master of
//     its slot (one PubSub and receive loop per master); ws:broadcast at
//     start, then ws:control (Start waits for it) and the wanted channels.
//   - local: nothing; Publish reaches nobody, Await returns at once.
//
// Reference counting stays with the caller: the server's indexes call Want
// when a room, user or client gains its first local member and Unwant when
// it loses its last. Want and Unwant record the change and return; they
// never block, so they may be called under the caller's locks.
//
// Goroutines: a Redis bus runs one receive loop per subscription
// connection, one goroutine that (un)subscribes the wanted channels
// (interest and sharded) and one publisher that pipelines publishes. Start
// starts them once it has succeeded; Close stops them and waits for them.
// The local bus starts none.
package bus

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Handler receives every message the bus hears, with its channel. It is
// called from the bus' receive loops, one message at a time per loop; it
// must not block for long.
type Handler func(channel string, payload []byte)

// Bus is what the server needs from the fleet's message bus.
type Bus interface {
	// Start subscribes the base channels (ws:broadcast and ws:control, the
	// patterns in pattern mode), waits for the confirmations within ctx and
	// Options.StartTimeout, and starts the bus' goroutines, which give every
	// message to handler. A refusal no retry can fix ends it at once with a
	// *RefusedError; other failures are retried (and logged) until the time
	// is up. After a failure Start may be called again; after Close it
	// returns ErrClosed.
	Start(ctx context.Context, handler Handler) error
	// Want marks channel as needed; Unwant as no longer needed. Both
	// return at once (see the package doc).
	Want(channel string)
	Unwant(channel string)
	// Await returns once every wanted channel of channels is live (its
	// subscription confirmed), when ctx ends, or at once while the bus is
	// down or in a mode where every channel is always live.
	Await(ctx context.Context, channels []string)
	// Publish sends payload on channel to the other instances. It fails at
	// once with ErrNotLive while the subscription is down (rather than
	// queue behind reconnects), ErrQueueFull past Options.PublishQueue and
	// ErrClosed after Close. Otherwise it returns Redis' answer, or (with
	// Options.AsyncPublish) nil once queued; if ctx ends first it returns
	// an error wrapping ErrUnconfirmed and ctx's error.
	Publish(ctx context.Context, channel string, payload []byte) error
	// Health says whether the subscription is live and since when it is
	// not.
	Health() Health
	// Close stops the goroutines, closes the subscriptions and fails the
	// publishes still queued with ErrClosed. It is idempotent.
	Close()
}

// Health is the state of a bus' subscriptions.
type Health struct {
	// Live is true while every base subscription is confirmed on a live
	// connection.
	Live bool
	// DownSince is when the current outage began; zero while live and
	// before Start.
	DownSince time.Time
}

// Options configures a Redis bus. Zero durations and sizes take the
// defaults written on each field.
type Options struct {
	// Logger receives the bus' logs. Default: none.
	Logger *zap.Logger
	// StartTimeout bounds Start's wait for the subscriptions. Default 30s.
	StartTimeout time.Duration
	// PublishTimeout bounds one PUBLISH (or one pipeline of them). Default 5s.
	PublishTimeout time.Duration
	// TopologyTimeout bounds one reload of a cluster's slot map (sharded).
	// Default 5s.
	TopologyTimeout time.Duration
	// PublishQueue bounds the publishes waiting for Redis. Default 10000.
	PublishQueue int
	// AsyncPublish makes Publish return once the message is queued.
	AsyncPublish bool
	// Events are told about outages and publishes. Each may be nil.
	Events Events
}

// Events are the bus' reports to its owner, which counts them. They are
// called from the bus' goroutines (Published also from Publish's caller)
// and must not block.
type Events struct {
	// Outage: the subscription was lost (once per outage).
	Outage func(err error)
	// Restored: it is live again after an outage of gap.
	Restored func(gap time.Duration)
	// Published: one Publish is finished, exactly once per call.
	Published func(PublishResult)
}

// PublishResult is how one Publish ended.
type PublishResult struct {
	Channel string
	// Queued is false when the publish was refused before it was queued
	// (ErrNotLive, ErrQueueFull, ErrClosed); Took is then zero.
	Queued bool
	// Took is from queueing to Redis' answer.
	Took time.Duration
	// Err is nil when Redis took the message.
	Err error
}

// Errors of a bus; test with errors.Is.
var (
	// ErrNotLive: the subscription is down (or not started), so a
	// publish is refused at once.
	ErrNotLive = errors.New("bus: subscription is down")
	// ErrQueueFull: more publishes wait than Options.PublishQueue.
	ErrQueueFull = errors.New("bus: publish queue full")
	// ErrClosed: the bus was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrUnconfirmed: Publish's context ended while the message was
	// queued; it may still be published.
	ErrUnconfirmed = errors.New("bus: gave up waiting for redis (the message may still be published)")
	// ErrNeedsCluster: sharded mode was given a client that is not a
	// *redis.ClusterClient.
	ErrNeedsCluster = errors.New("bus: sharded mode needs a Redis Cluster client (redis.ClusterClient)")
)

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.TopologyTimeout <= 0 {
		o.TopologyTimeout = 5 * time.Second
	}
	if o.PublishQueue <= 0 {
		o.PublishQueue = 10000
	}
	return o
}

// receiveTimeout is how long a receive loop waits for a message before it
// pings Redis to find out whether the connection is still alive;
// pongTimeout is how long it then waits for the pong (or any message)
// before it drops the connection as dead. A partition or a half-open
// connection (the socket looks open, nothing arrives) is therefore noticed
// within receiveTimeout+pongTimeout (8 s), even though writing the PING
// succeeds.
const (
	receiveTimeout = 5 * time.Second
	pongTimeout    = 3 * time.Second
)

// receive reads the next message of ps. After a ping (pinged), it waits at
// most pongTimeout, through Receive: without its own timeout argument
// go-redis counts a read timeout as a broken connection, closes it and
// dials again on the next call, resubscribing everything.
func receive(ctx context.Context, ps *redis.PubSub, pinged bool) (any, error) {
	if !pinged {
		return ps.ReceiveTimeout(ctx, receiveTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, pongTimeout)
	defer cancel()
	return ps.Receive(ctx)
}

// subscribeBatch bounds the channels of one SUBSCRIBE or UNSUBSCRIBE.
const subscribeBatch = 512

// publishBatch bounds the commands of one pipeline.
const publishBatch = 256
