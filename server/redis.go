package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// The subscriptions of pattern mode, the one Ignis uses: every instance
// hears every message and keeps what concerns its clients.
var (
	subChannels = []string{protocol.ChannelBroadcast}
	subPatterns = []string{protocol.ChannelRoomPattern, protocol.ChannelClientPattern, protocol.ChannelUserPattern}
)

// receiveTimeout is how long the receive loop waits for a message before it
// pings Redis to find out whether the connection is still alive.
const receiveTimeout = 15 * time.Second

// subscribe opens the subscription and waits for Redis to confirm every
// channel and pattern, retrying until RedisTimeout.
func (h *Helper) subscribe(ctx context.Context) (*redis.PubSub, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RedisTimeout)
	defer cancel()
	ps := h.rdb.Subscribe(ctx)
	// The channels are recorded even when the command fails, and go-redis
	// subscribes again on every reconnect.
	errSub := ps.Subscribe(ctx, subChannels...)
	errPSub := ps.PSubscribe(ctx, subPatterns...)
	lastErr := errors.Join(errSub, errPSub)
	want := len(subChannels) + len(subPatterns)
	confirmed := map[string]bool{}
	backoff := 50 * time.Millisecond
	for len(confirmed) < want {
		if ctx.Err() != nil {
			_ = ps.Close()
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return nil, fmt.Errorf("server: redis at %s did not confirm the subscriptions within %s: %w",
				redisconn.Addr(h.rdb), time.Since(start).Round(time.Millisecond), lastErr)
		}
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			lastErr = err
			if isTimeout(err) {
				continue
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(backoff*2, time.Second)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				confirmed[m.Channel] = true
			}
		case *redis.Message:
			h.handleEnvelope(m.Payload)
		}
	}
	h.subscribed.Store(true)
	return ps, nil
}

// receiveLoop is the only reader of the subscription. go-redis reconnects
// and resubscribes inside Receive; the loop counts the outages and waits
// between attempts so a dead Redis costs no busy loop.
func (h *Helper) receiveLoop(ps *redis.PubSub) {
	want := len(subChannels) + len(subPatterns)
	confirmed := want
	backoff := 50 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(h.ctx, receiveTimeout)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) {
				// Quiet line: make sure it is still alive.
				if perr := ps.Ping(h.ctx); perr != nil {
					h.markDown(perr)
				}
				continue
			}
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			if h.markDown(err) {
				confirmed = 0
			}
			t := time.NewTimer(backoff)
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				confirmed++
				if confirmed >= want && !h.subscribed.Load() {
					gap := time.Duration(time.Now().UnixNano() - h.redisDownSince.Swap(0))
					h.stats.redisDowntime.Add(int64(gap))
					h.stats.redisLastGap.Store(int64(gap))
					h.subscribed.Store(true)
					h.stats.redisResubscribes.Add(1)
					h.log.Info("redis subscriptions restored", zap.Duration("gap", gap))
				}
			}
		case *redis.Message:
			h.handleEnvelope(m.Payload)
		}
	}
}

// markDown records a subscription outage once; it reports whether the
// subscription was up until now.
func (h *Helper) markDown(err error) bool {
	if h.subscribed.CompareAndSwap(true, false) {
		h.redisDownSince.Store(time.Now().UnixNano())
		h.stats.redisOutages.Add(1)
		h.log.Warn("redis subscription lost; retrying", zap.Error(err))
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handleEnvelope delivers a message published by another instance or an
// emitter. Anything malformed is counted, logged and dropped.
func (h *Helper) handleEnvelope(payload string) {
	h.stats.redisReceived.Add(1)
	env, err := parseEnvelope([]byte(payload))
	if err != nil {
		h.stats.redisMalformed.Add(1)
		h.log.Warn("malformed redis message dropped", zap.Error(err), zap.Int("bytes", len(payload)))
		return
	}
	if env.ServerID == h.serverID {
		return
	}
	m, err := newRawMessage(env.Event, env.Data)
	if err != nil {
		h.stats.redisMalformed.Add(1)
		return
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
		h.deliverUser(m, env.Target)
	}
}

// parseEnvelope decodes and checks a Redis envelope.
func parseEnvelope(b []byte) (protocol.Envelope, error) {
	var env protocol.Envelope
	trimmed := strings.TrimLeft(string(b), " \t\r\n")
	if !strings.HasPrefix(trimmed, "{") {
		return env, errors.New("server: envelope is not a JSON object")
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, fmt.Errorf("server: envelope: %w", err)
	}
	if env.ServerID == "" {
		return env, errors.New("server: envelope without serverId")
	}
	if !env.Type.Valid() {
		return env, fmt.Errorf("server: envelope type %q unknown", env.Type)
	}
	if env.Event == "" {
		return env, errors.New("server: envelope without event")
	}
	if env.Type != protocol.TypeBroadcast && env.Target == "" {
		return env, fmt.Errorf("server: %s envelope without target", env.Type)
	}
	if len(env.Data) == 0 {
		env.Data = nil
	}
	return env, nil
}

// publish sends m on Redis for the other instances. Failures are counted,
// logged and returned.
func (h *Helper) publish(ctx context.Context, t protocol.MessageType, target string, m *message, exclude []string) error {
	if !h.isConfigured() {
		return ErrNotConfigured
	}
	env := protocol.Envelope{ServerID: h.serverID, Type: t, Target: target, Event: m.event, Data: m.data, Exclude: exclude}
	if env.Data == nil {
		env.Data = json.RawMessage("null")
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("server: encode envelope: %w", err)
	}
	if err := h.rdb.Publish(ctx, protocol.ChannelFor(t, target), b).Err(); err != nil {
		h.stats.publishErrors.Add(1)
		h.log.Warn("redis publish failed", zap.String("type", string(t)), zap.Error(err))
		return fmt.Errorf("server: publish %s message: %w", t, err)
	}
	h.stats.published.Add(1)
	return nil
}

func (h *Helper) isConfigured() bool {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	return h.configured && !h.shutdown
}

// ErrNotReady is returned by Health while the Redis subscription is down.
var ErrNotReady = errors.New("server: redis subscription is down")

// Health reports whether the Helper can serve the fleet: nil when it is
// configured, not shut down and its Redis subscription is live. Local
// delivery keeps working while it returns ErrNotReady.
func (h *Helper) Health(ctx context.Context) error {
	if !h.isConfigured() {
		return ErrNotConfigured
	}
	if !h.subscribed.Load() {
		return ErrNotReady
	}
	return ctx.Err()
}
