package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// Routing modes. In pattern mode (the one Ignis uses) every instance hears
// every message and keeps what concerns its clients. In interest mode an
// instance subscribes only to the channels of its own rooms, users and
// clients, plus ws:broadcast: same channels, same envelope, less traffic.
// Sharded mode is interest mode on Redis Cluster's sharded Pub/Sub
// (SPUBLISH, SSUBSCRIBE): each message stays on the master of its channel's
// slot, but only sharded instances and emitters see it (see
// Config.RedisRouting).
const (
	RoutingInterest = "interest"
	RoutingPattern  = "pattern"
	RoutingSharded  = "sharded"
)

var subPatterns = []string{protocol.ChannelRoomPattern, protocol.ChannelClientPattern, protocol.ChannelUserPattern}

// baseSubscriptions are the channels and patterns whose confirmation means
// the subscription is live.
func (h *Helper) baseSubscriptions() (channels, patterns []string) {
	if h.cfg.RedisRouting == RoutingPattern {
		return []string{protocol.ChannelBroadcast, protocol.ChannelControl}, subPatterns
	}
	return []string{protocol.ChannelBroadcast, protocol.ChannelControl}, nil
}

// receiveTimeout is how long the receive loop waits for a message before it
// pings Redis to find out whether the connection is still alive.
const receiveTimeout = 15 * time.Second

// subscribe opens the subscription and waits for Redis to confirm the base
// channels and patterns. A refusal that no retry can fix
// (permanentRedisError) ends it at once with a *RedisRefusedError; other
// failures are logged and retried until RedisTimeout.
func (h *Helper) subscribe(ctx context.Context) (*redis.PubSub, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RedisTimeout)
	defer cancel()
	addr := redisconn.Addr(h.rdb)
	retries := newStartRetries(h, addr, start)
	channels, patterns := h.baseSubscriptions()
	ps := h.rdb.Subscribe(ctx)
	// The channels are recorded even when the command fails, and go-redis
	// subscribes again on every reconnect.
	err := ps.Subscribe(ctx, channels...)
	if len(patterns) > 0 {
		if perr := ps.PSubscribe(ctx, patterns...); err == nil {
			err = perr
		}
	}
	pending := toSet(append(append([]string(nil), channels...), patterns...))
	backoff := 50 * time.Millisecond
	for len(pending) > 0 {
		if err != nil && permanentRedisError(err) {
			_ = ps.Close()
			return nil, &RedisRefusedError{Addr: addr, Err: err}
		}
		if err != nil && ctx.Err() == nil {
			// After a read timeout the connection is up: wait again at once.
			weak := isReadTimeout(err)
			retries.failed(err, weak)
			if !weak {
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
				backoff = min(backoff*2, time.Second)
			}
		}
		if ctx.Err() != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("server: redis at %s did not confirm the subscriptions within %s: %w",
				addr, time.Since(start).Round(time.Millisecond), retries.cause(err, ctx.Err()))
		}
		var msg any
		msg, err = ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				delete(pending, m.Channel)
			}
		case *redis.Message:
			h.handleRedisMessage(m.Channel, m.Payload)
		}
	}
	h.subscribed.Store(true)
	return ps, nil
}

// receiveLoop is the only reader of the subscription. go-redis reconnects
// and resubscribes inside Receive; the loop counts the outages and waits
// between attempts so a dead Redis costs no busy loop.
func (h *Helper) receiveLoop(ps *redis.PubSub) {
	channels, patterns := h.baseSubscriptions()
	base := append(append([]string(nil), channels...), patterns...)
	var pending map[string]struct{}
	backoff := 50 * time.Millisecond
	down := func(err error) {
		if h.markDown(err) || pending == nil {
			pending = toSet(base)
		}
		if h.interest != nil {
			h.interest.unconfirm()
		}
	}
	for {
		msg, err := ps.ReceiveTimeout(h.ctx, receiveTimeout)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) {
				// Quiet line: make sure it is still alive.
				if perr := ps.Ping(h.ctx); perr != nil {
					down(perr)
				}
				continue
			}
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			down(err)
			t := time.NewTimer(backoff)
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if h.interest != nil && m.Kind == "subscribe" {
				h.interest.confirm(m.Channel)
			}
			if pending != nil && (m.Kind == "subscribe" || m.Kind == "psubscribe") {
				delete(pending, m.Channel)
				if len(pending) == 0 {
					pending = nil
					h.markUp()
				}
			}
		case *redis.Message:
			h.handleRedisMessage(m.Channel, m.Payload)
		}
	}
}

// markUp records the end of an outage.
func (h *Helper) markUp() {
	if h.subscribed.Load() {
		return
	}
	now := time.Now()
	since := h.redisDownSince.Swap(0)
	gap := time.Duration(now.UnixNano() - since)
	h.stats.redisDowntime.Add(int64(gap))
	h.stats.redisLastGap.Store(int64(gap))
	h.subscribed.Store(true)
	h.stats.redisResubscribes.Add(1)
	h.log.Info("redis subscriptions restored", zap.Duration("gap", gap))
	h.afterGap(time.Unix(0, since), now)
}

// interest is the set of channels interest mode wants subscribed. Index
// changes record what they need under the index lock (cheap map work); the
// subscriber goroutine turns the changes into batched SUBSCRIBE and
// UNSUBSCRIBE commands, away from every caller.
type interest struct {
	mu      sync.Mutex
	desired map[string]bool
	dirty   map[string]struct{}
	wake    chan struct{}
	// confirmed holds the channels Redis has confirmed on the current
	// connection; waiters are woken when theirs is confirmed.
	confirmed map[string]bool
	waiters   map[string][]chan struct{}
}

func newInterest() *interest {
	return &interest{
		desired:   map[string]bool{},
		dirty:     map[string]struct{}{},
		wake:      make(chan struct{}, 1),
		confirmed: map[string]bool{},
		waiters:   map[string][]chan struct{}{},
	}
}

// set marks channel as needed (on) or no longer needed (off). nil-safe:
// pattern mode has no interest set.
func (in *interest) set(channel string, on bool) {
	if in == nil {
		return
	}
	in.mu.Lock()
	if on {
		in.desired[channel] = true
	} else {
		delete(in.desired, channel)
	}
	in.dirty[channel] = struct{}{}
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// confirm records Redis' confirmation of a channel and wakes its waiters.
func (in *interest) confirm(channel string) {
	in.mu.Lock()
	in.confirmed[channel] = true
	ws := in.waiters[channel]
	delete(in.waiters, channel)
	if len(in.waiters) == 0 && len(ws) > 0 {
		// A map keeps its peak size; start afresh once nobody waits.
		in.waiters = map[string][]chan struct{}{}
	}
	in.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// unconfirm forgets every confirmation: the connection was lost, and go-redis
// will subscribe again (and Redis confirm again) on the next one.
func (in *interest) unconfirm() {
	in.mu.Lock()
	clear(in.confirmed)
	in.mu.Unlock()
}

// await waits until Redis has confirmed every channel in channels, or ctx
// ends. Callers use it so that a client is told "connected" only when
// messages for it from other instances can reach it.
func (in *interest) await(ctx context.Context, channels []string) {
	if in == nil {
		return
	}
	var wait []chan struct{}
	in.mu.Lock()
	for _, ch := range channels {
		if !in.confirmed[ch] && in.desired[ch] {
			w := make(chan struct{})
			in.waiters[ch] = append(in.waiters[ch], w)
			wait = append(wait, w)
		}
	}
	in.mu.Unlock()
	for _, w := range wait {
		select {
		case <-w:
		case <-ctx.Done():
			return
		}
	}
}

// subscribeBatch bounds the channels of one SUBSCRIBE or UNSUBSCRIBE.
const subscribeBatch = 512

// interestLoop keeps the subscription equal to the desired set.
func (h *Helper) interestLoop(ps *redis.PubSub) {
	in := h.interest
	subscribed := map[string]bool{}
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-in.wake:
		}
		in.mu.Lock()
		var add, remove []string
		for ch := range in.dirty {
			switch want := in.desired[ch]; {
			case want && !subscribed[ch]:
				add = append(add, ch)
				subscribed[ch] = true
			case !want && subscribed[ch]:
				remove = append(remove, ch)
				delete(subscribed, ch)
				delete(in.confirmed, ch)
			}
		}
		clear(in.dirty)
		in.mu.Unlock()
		// go-redis records the set even when a command fails and restores
		// it on reconnect, so an error here only needs logging.
		for len(add) > 0 {
			n := min(len(add), subscribeBatch)
			if err := ps.Subscribe(h.ctx, add[:n]...); err != nil && h.ctx.Err() == nil {
				h.log.Debug("redis subscribe deferred to reconnect", zap.Error(err))
			}
			add = add[n:]
		}
		for len(remove) > 0 {
			n := min(len(remove), subscribeBatch)
			if err := ps.Unsubscribe(h.ctx, remove[:n]...); err != nil && h.ctx.Err() == nil {
				h.log.Debug("redis unsubscribe deferred to reconnect", zap.Error(err))
			}
			remove = remove[n:]
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

// handleRedisMessage dispatches one message from a subscription.
func (h *Helper) handleRedisMessage(channel, payload string) {
	if channel == protocol.ChannelControl {
		h.handleControl([]byte(payload))
		return
	}
	h.handleEnvelope(payload)
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

// publish sends m on Redis for the other instances; local is how many
// local clients the caller delivered it to. Failures are counted, logged
// and returned (with AsyncPublish: counted and logged).
func (h *Helper) publish(ctx context.Context, t protocol.MessageType, target string, m *message, exclude []string, local int) error {
	env := protocol.Envelope{ServerID: h.serverID, Type: t, Target: target, Event: m.event, Data: m.data, Exclude: exclude}
	if env.Data == nil {
		env.Data = json.RawMessage("null")
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("server: encode envelope: %w", err)
	}
	return h.publishPayload(ctx, protocol.ChannelFor(t, target), b, string(t), local)
}

// publishPayload publishes payload on channel through the publisher. A
// failure after the caller's local part is a *PublishError.
func (h *Helper) publishPayload(ctx context.Context, channel string, payload []byte, kind string, local int) error {
	if err := h.lifeErr(); err != nil {
		return err
	}
	fail := func(err error) error {
		return &PublishError{Local: local, Err: err, h: h, channel: channel, payload: payload, kind: kind}
	}
	if !h.subscribed.Load() {
		// Redis is down (the outage was logged once): fail at once
		// rather than queue behind go-redis' dial retries.
		h.stats.publishErrors.Add(1)
		return fail(ErrNotReady)
	}
	req := &publishReq{channel: channel, payload: payload, kind: kind}
	if h.opts.Observer != nil {
		req.start = time.Now()
	}
	if !h.cfg.AsyncPublish {
		req.done = make(chan error, 1)
	}
	if err := h.pub.enqueue(req, h.cfg.PublishQueue); err != nil {
		h.stats.publishErrors.Add(1)
		return fail(err)
	}
	if req.done == nil {
		return nil
	}
	select {
	case err := <-req.done:
		if err != nil {
			return fail(err)
		}
		return nil
	case <-ctx.Done():
		// The publish is queued and may still go out: not a PublishError,
		// since retrying it could deliver twice.
		return fmt.Errorf("server: publish %s message: gave up waiting for Redis (it may still be published): %w", kind, ctx.Err())
	}
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

// publishReq is one PUBLISH waiting for the publisher.
type publishReq struct {
	channel string
	payload []byte
	kind    string     // the envelope type, or "control", for logs
	start   time.Time  // when it was queued, if an Observer wants it
	done    chan error // nil for asynchronous publishes
}

// publisher batches publishes: whatever is waiting when Redis is free goes
// out in one pipeline, so concurrent senders share round trips.
type publisher struct {
	mu      sync.Mutex
	queue   []*publishReq
	spare   []*publishReq
	stopped bool
	wake    chan struct{}
}

// ErrPublishQueueFull is returned when more publishes wait than
// Config.PublishQueue allows (Redis is slow or down).
var ErrPublishQueueFull = errors.New("server: publish queue full")

func (p *publisher) enqueue(r *publishReq, limit int) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return ErrClosed
	}
	if len(p.queue) >= limit {
		p.mu.Unlock()
		return ErrPublishQueueFull
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// publishBatch bounds the commands of one pipeline.
const publishBatch = 256

// publishLoop is the only goroutine that publishes. On stop it fails what
// is still queued.
func (h *Helper) publishLoop() {
	p := h.pub
	for {
		select {
		case <-p.wake:
		case <-h.ctx.Done():
			p.mu.Lock()
			p.stopped = true
			left := p.queue
			p.queue = nil
			p.mu.Unlock()
			for _, r := range left {
				h.finishPublish(r, ErrClosed)
			}
			return
		}
		for {
			p.mu.Lock()
			batch := p.queue
			p.queue = p.spare[:0]
			p.spare = nil
			p.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for rest := batch; len(rest) > 0; {
				n := min(len(rest), publishBatch)
				h.publishNow(rest[:n])
				rest = rest[n:]
			}
			clear(batch)
			p.mu.Lock()
			if cap(batch) <= 4*publishBatch {
				p.spare = batch[:0]
			}
			p.mu.Unlock()
		}
	}
}

// publishNow sends reqs, one PUBLISH (SPUBLISH in sharded mode) or one
// pipeline, and reports each result.
func (h *Helper) publishNow(reqs []*publishReq) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.WriteTimeout)
	defer cancel()
	sharded := h.shards != nil
	if len(reqs) == 1 {
		r := reqs[0]
		var err error
		if sharded {
			err = h.rdb.SPublish(ctx, r.channel, r.payload).Err()
		} else {
			err = h.rdb.Publish(ctx, r.channel, r.payload).Err()
		}
		h.finishPublish(r, err)
		return
	}
	pipe := h.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(reqs))
	for i, r := range reqs {
		if sharded {
			cmds[i] = pipe.SPublish(ctx, r.channel, r.payload)
		} else {
			cmds[i] = pipe.Publish(ctx, r.channel, r.payload)
		}
	}
	_, _ = pipe.Exec(ctx)
	for i, r := range reqs {
		h.finishPublish(r, cmds[i].Err())
	}
}

func (h *Helper) finishPublish(r *publishReq, err error) {
	if obs := h.opts.Observer; obs != nil && !r.start.IsZero() {
		obs.ObservePublish(time.Since(r.start), err)
	}
	if err != nil {
		h.stats.publishErrors.Add(1)
		if ce := h.log.Check(zap.WarnLevel, "redis publish failed"); ce != nil {
			ce.Write(zap.String("type", r.kind), zap.Error(err))
		}
	} else {
		h.stats.published.Add(1)
	}
	if r.done != nil {
		r.done <- err
	}
}

// lifeErr is nil while the Helper is configured and not shut down.
func (h *Helper) lifeErr() error {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	switch {
	case h.shutdown:
		return ErrClosed
	case !h.configured:
		return ErrNotConfigured
	}
	return nil
}

// ErrNotReady is returned by Health while the Redis subscription is down,
// and wrapped in the PublishError of a publish made meanwhile.
var ErrNotReady = errors.New("server: redis subscription is down")

// Health reports whether the Helper can serve the fleet: nil when it is
// configured, not shut down and its Redis subscription is live. Local
// delivery keeps working while it returns ErrNotReady. After Shutdown it
// returns ErrClosed.
func (h *Helper) Health(ctx context.Context) error {
	if err := h.lifeErr(); err != nil {
		return err
	}
	if !h.subscribed.Load() {
		return ErrNotReady
	}
	return ctx.Err()
}
