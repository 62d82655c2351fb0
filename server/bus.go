package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/bus"
)

// Routing modes. In pattern mode (the one Ignis uses) every instance hears
// every message and keeps what concerns its clients. In interest mode an
// instance subscribes only to the channels of its own rooms, users and
// clients, plus ws:broadcast: same channels, same envelope, less traffic.
// Sharded mode is interest mode on Redis Cluster's sharded Pub/Sub
// (SPUBLISH, SSUBSCRIBE): each message stays on the master of its channel's
// slot, but only sharded instances and emitters see it (see
// Config.RedisRouting). Options.LocalBus runs one instance without Redis.
const (
	RoutingInterest = "interest"
	RoutingPattern  = "pattern"
	RoutingSharded  = "sharded"
)

// ErrShardedNeedsCluster is returned by New when RedisRouting is
// RoutingSharded and Options.Redis is not a *redis.ClusterClient.
var ErrShardedNeedsCluster = errors.New("server: RedisRouting sharded needs a Redis Cluster client (redis.ClusterClient)")

// RedisRefusedError is returned by Configure when Redis answered with an
// error that no retry can fix: a missing or wrong password, an ACL user
// without the permission, a database index out of range, a command the
// server does not know. Configure returns it at once instead of waiting for
// RedisTimeout. errors.As(err, new(redis.Error)) finds Redis's reply in it.
// Its fields are Addr (the Redis, as redisconn.Addr describes it) and Err
// (go-redis' error, with Redis's own words).
type RedisRefusedError = bus.RefusedError

// newBus chooses the bus for opts (New has checked them): the only place
// that knows the Redis modes.
func (h *Helper) newBus(opts Options) (bus.Bus, error) {
	if opts.LocalBus {
		return bus.NewLocal(), nil
	}
	o := bus.Options{
		Logger:          h.log,
		StartTimeout:    h.cfg.RedisTimeout,
		PublishTimeout:  h.cfg.PublishTimeout,
		TopologyTimeout: h.cfg.TopologyTimeout,
		PublishQueue:    h.cfg.PublishQueue,
		AsyncPublish:    h.cfg.AsyncPublish,
		Events: bus.Events{
			Outage:    func(error) { h.stats.redisOutages.Add(1) },
			Restored:  h.busRestored,
			Published: h.busPublished,
		},
	}
	switch h.cfg.RedisRouting {
	case RoutingPattern:
		return bus.NewPattern(opts.Redis, o), nil
	case RoutingSharded:
		b, err := bus.NewSharded(opts.Redis, o)
		if err != nil {
			return nil, ErrShardedNeedsCluster
		}
		return b, nil
	}
	return bus.NewInterest(opts.Redis, o), nil
}

func (h *Helper) busRestored(gap time.Duration) {
	h.stats.redisDowntime.Add(int64(gap))
	h.stats.redisLastGap.Store(int64(gap))
	h.stats.redisResubscribes.Add(1)
	now := time.Now()
	h.afterGap(now.Add(-gap), now)
}

// busPublished counts, observes and logs the end of one publish.
func (h *Helper) busPublished(r bus.PublishResult) {
	if r.Queued {
		if obs := h.opts.Observer; obs != nil {
			obs.ObservePublish(r.Took, r.Err)
		}
	}
	if r.Err == nil {
		h.stats.published.Add(1)
		return
	}
	h.stats.publishErrors.Add(1)
	if r.Queued {
		if ce := h.log.Check(zap.WarnLevel, "redis publish failed"); ce != nil {
			ce.Write(zap.String("type", kindOf(r.Channel)), zap.Error(r.Err))
		}
	}
}

// kindOf names a channel's traffic for logs and errors: the envelope type,
// or "control".
func kindOf(channel string) string {
	switch {
	case channel == protocol.ChannelControl:
		return "control"
	case channel == protocol.ChannelBroadcast:
		return string(protocol.TypeBroadcast)
	case strings.HasPrefix(channel, protocol.ChannelRoomPrefix):
		return string(protocol.TypeRoom)
	case strings.HasPrefix(channel, protocol.ChannelClientPrefix):
		return string(protocol.TypeClient)
	case strings.HasPrefix(channel, protocol.ChannelUserPrefix):
		return string(protocol.TypeUser)
	}
	return channel
}

// handleBusMessage dispatches one message from the bus.
func (h *Helper) handleBusMessage(channel string, payload []byte) {
	if channel == protocol.ChannelControl {
		h.handleControl(payload)
		return
	}
	h.handleEnvelope(payload)
}

// handleEnvelope delivers a message published by another instance or an
// emitter. Anything malformed is counted, logged and dropped.
func (h *Helper) handleEnvelope(payload []byte) {
	h.stats.redisReceived.Add(1)
	env, err := parseEnvelope(payload)
	if err != nil {
		h.stats.redisMalformed.Add(1)
		h.log.Warn("malformed redis message dropped", zap.Error(err), zap.Int("bytes", len(payload)))
		return
	}
	var x frameExtra
	if env.Offset != "" {
		// A history-room message: every instance delivers it from here,
		// the one that published it too, so all see stream order.
		if _, _, ok := parseOffset(env.Offset); !ok || env.Type != protocol.TypeRoom {
			h.stats.redisMalformed.Add(1)
			h.log.Warn("malformed redis message dropped", zap.String("offset", env.Offset))
			return
		}
		x = frameExtra{room: env.Target, offset: env.Offset}
	} else if env.ServerID == h.serverID {
		return
	}
	m, err := newFrame(env.Event, env.Data, x)
	if err != nil {
		h.stats.redisMalformed.Add(1)
		return
	}
	if m.offset != "" {
		if h.RoomSize(m.room) == 0 {
			return // nobody here: nothing to deliver or to catch up later
		}
		if !h.hist.admit(m) {
			return // delivered already, or held back for a catch-up
		}
	}
	exclude := toSet(env.Exclude)
	switch env.Type {
	case protocol.TypeBroadcast:
		h.deliverBroadcast(m, exclude)
	case protocol.TypeRoom:
		h.deliverRoom(m, env.Target, exclude, true)
	case protocol.TypeClient:
		h.deliverClient(m, env.Target, exclude)
	case protocol.TypeUser:
		h.deliverUser(m, env.Target, exclude)
	}
}

// parseEnvelope decodes and checks a Redis envelope (protocol's codec,
// shared with the emitter).
func parseEnvelope(b []byte) (protocol.Envelope, error) {
	env, err := protocol.DecodeEnvelope(b)
	if err != nil {
		return env, fmt.Errorf("server: %w", err)
	}
	return env, nil
}

// publish sends m on the bus for the other instances; local is how many
// local clients the caller delivered it to. Failures are counted, logged
// and returned (with AsyncPublish: counted and logged).
func (h *Helper) publish(ctx context.Context, t protocol.MessageType, target string, m *message, exclude []string, local int) error {
	b, err := protocol.EncodeEnvelope(protocol.Envelope{ServerID: h.serverID, Type: t, Target: target, Event: m.event, Data: m.data, Exclude: exclude})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return h.publishPayload(ctx, protocol.ChannelFor(t, target), b, string(t), local)
}

// publishPayload publishes payload on channel through the bus. A failure
// after the caller's local part is a *PublishError.
func (h *Helper) publishPayload(ctx context.Context, channel string, payload []byte, kind string, local int) error {
	if err := h.lifeErr(); err != nil {
		return err
	}
	err := h.bus.Publish(ctx, channel, payload)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bus.ErrUnconfirmed):
		// The publish is queued and may still go out: not a PublishError,
		// since retrying it could deliver twice.
		return fmt.Errorf("server: publish %s message: gave up waiting for Redis (it may still be published): %w", kind, ctx.Err())
	}
	return &PublishError{Local: local, Err: serverErr(err), h: h, channel: channel, payload: payload, kind: kind}
}

// serverErr turns the bus' sentinels into the server's.
func serverErr(err error) error {
	switch {
	case errors.Is(err, bus.ErrNotLive):
		return ErrNotReady
	case errors.Is(err, bus.ErrQueueFull):
		return ErrPublishQueueFull
	case errors.Is(err, bus.ErrClosed):
		return ErrClosed
	}
	return err
}

// PublishError is returned by Send, the Publish… methods and the fleet-wide
// Disconnect… methods when the local part was done but Redis did not take
// the message: the local clients have it, the other instances do not.
// errors.Is(err, ErrNotReady) tells that the subscription was down.
//
// Do not retry by calling the same method again: local clients would get
// the message twice. RetryPublish publishes the same message on Redis only.
type PublishError struct {
	// Local is how many local clients the message was delivered to (or,
	// for a disconnect, how many were closed) before publishing failed.
	Local int
	// Err is why publishing failed: ErrNotReady, ErrPublishQueueFull,
	// ErrClosed or the Redis error.
	Err error

	h       *Helper
	channel string
	payload []byte
	kind    string
}

// Error says what was delivered and what was not.
func (e *PublishError) Error() string {
	return fmt.Sprintf("server: %s message reached %d local client(s) but was not published on Redis "+
		"(do not repeat the call; use RetryPublish): %v", e.kind, e.Local, e.Err)
}

// Unwrap returns Err.
func (e *PublishError) Unwrap() error { return e.Err }

// RetryPublish publishes the same message on Redis again, without
// delivering it locally a second time. It fails the same way while Redis
// is still down.
func (e *PublishError) RetryPublish(ctx context.Context) error {
	return e.h.publishPayload(ctx, e.channel, e.payload, e.kind, e.Local)
}

// ErrPublishQueueFull is returned when more publishes wait than
// Config.PublishQueue allows (Redis is slow or down).
var ErrPublishQueueFull = errors.New("server: publish queue full")

// ErrNotReady is returned by Health while the Redis subscription is down,
// and wrapped in the PublishError of a publish made meanwhile.
var ErrNotReady = errors.New("server: redis subscription is down")

// Health reports whether the Helper can serve the fleet: nil when it is
// configured, not shut down and its Redis subscription is live (with the
// local bus: configured and not shut down). Local delivery keeps working
// while it returns ErrNotReady. Before Configure has finished it returns
// ErrNotConfigured, after Shutdown ErrClosed; it never waits for Configure.
func (h *Helper) Health(ctx context.Context) error {
	if err := h.lifeErr(); err != nil {
		return err
	}
	if !h.bus.Health().Live {
		return ErrNotReady
	}
	return ctx.Err()
}
