package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// pubsub is the pattern and interest modes: one go-redis PubSub, read by
// one receive loop. In interest mode (in != nil) a second goroutine keeps
// its channels equal to the wanted set.
type pubsub struct {
	rdb      redis.UniversalClient
	opts     Options
	log      *zap.Logger
	patterns bool
	in       *interest // nil in pattern mode
	health   health
	pub      *publisher

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the fields below, never held across I/O
	starting bool
	started  bool
	closed   bool
	ps       *redis.PubSub
}

// NewPattern returns the pattern-mode bus: every instance hears every
// message, as Ignis servers do.
func NewPattern(rdb redis.UniversalClient, o Options) Bus { return newPubSub(rdb, o, true) }

// NewInterest returns the interest-mode bus: only the wanted channels.
func NewInterest(rdb redis.UniversalClient, o Options) Bus { return newPubSub(rdb, o, false) }

func newPubSub(rdb redis.UniversalClient, o Options, patterns bool) *pubsub {
	o = o.withDefaults()
	b := &pubsub{rdb: rdb, opts: o, log: o.Logger, patterns: patterns}
	b.health = health{log: o.Logger, events: o.Events}
	if !patterns {
		b.in = newInterest()
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.pub = newPublisher(o, publishWith(rdb, false))
	return b
}

// publishWith returns the publisher's send: one PUBLISH (SPUBLISH when
// sharded) or one pipeline of them.
func publishWith(rdb redis.UniversalClient, sharded bool) func(context.Context, []*pubReq) {
	cmd := func(c redis.Cmdable, ctx context.Context, r *pubReq) *redis.IntCmd {
		if sharded {
			return c.SPublish(ctx, r.channel, r.payload)
		}
		return c.Publish(ctx, r.channel, r.payload)
	}
	return func(ctx context.Context, reqs []*pubReq) {
		if len(reqs) == 1 {
			reqs[0].err = cmd(rdb, ctx, reqs[0]).Err()
			return
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(reqs))
		for i, r := range reqs {
			cmds[i] = cmd(pipe, ctx, r)
		}
		_, _ = pipe.Exec(ctx)
		for i, r := range reqs {
			r.err = cmds[i].Err()
		}
	}
}

var subPatterns = []string{protocol.ChannelRoomPattern, protocol.ChannelClientPattern, protocol.ChannelUserPattern}

// base returns the channels and patterns whose confirmation means the
// subscription is live.
func (b *pubsub) base() (channels, patterns []string) {
	channels = []string{protocol.ChannelBroadcast, protocol.ChannelControl}
	if b.patterns {
		patterns = subPatterns
	}
	return channels, patterns
}

func (b *pubsub) Start(ctx context.Context, handler Handler) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.started || b.starting:
		b.mu.Unlock()
		return errors.New("bus: Start called twice")
	}
	b.starting = true
	b.mu.Unlock()

	// Close ends the wait too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()
	ps, err := b.subscribe(ctx, handler)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.starting = false
	if err == nil && b.closed {
		_ = ps.Close()
		err = ErrClosed
	}
	if err != nil {
		return err
	}
	b.started = true
	b.ps = ps
	b.health.started()
	b.goRun(func() { b.receiveLoop(ps, handler) })
	if b.in != nil {
		b.goRun(func() { b.interestLoop(ps) })
	}
	b.goRun(func() { b.pub.run(b.ctx) })
	return nil
}

// goRun starts f counted by wg; b.mu is held, so Close cannot be waiting.
func (b *pubsub) goRun(f func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

// subscribe opens the subscription and waits for Redis to confirm the
// base channels and patterns. A refusal that no retry can fix
// (permanentRedisError) ends it at once with a *RefusedError; other
// failures are logged and retried until StartTimeout.
func (b *pubsub) subscribe(ctx context.Context, handler Handler) (*redis.PubSub, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
	defer cancel()
	addr := redisconn.Addr(b.rdb)
	retries := newStartRetries(b.log, addr, start)
	channels, patterns := b.base()
	ps := b.rdb.Subscribe(ctx)
	// The channels are recorded even when the command fails, and go-redis
	// subscribes again on every reconnect.
	err := ps.Subscribe(ctx, channels...)
	if len(patterns) > 0 {
		if perr := ps.PSubscribe(ctx, patterns...); err == nil {
			err = perr
		}
	}
	pending := toSet(append(append([]string(nil), channels...), patterns...))
	var bo backoff
	for len(pending) > 0 {
		if err != nil && permanentRedisError(err) {
			_ = ps.Close()
			return nil, &RefusedError{Addr: addr, Err: err}
		}
		if err != nil && ctx.Err() == nil {
			// After a read timeout the connection is up: wait again at once.
			weak := isReadTimeout(err)
			retries.failed(err, weak)
			if !weak {
				bo.Wait(ctx)
			}
		}
		if ctx.Err() != nil {
			_ = ps.Close()
			if b.ctx.Err() != nil {
				return nil, ErrClosed
			}
			return nil, startError(addr, start, retries, err, ctx.Err())
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
			if b.in != nil && m.Kind == "subscribe" {
				b.in.confirm(m.Channel)
			}
		case *redis.Message:
			handler(m.Channel, []byte(m.Payload))
		}
	}
	if b.in != nil {
		// The base channels are wanted for good.
		b.in.mu.Lock()
		for _, ch := range channels {
			b.in.desired[ch] = true
		}
		b.in.mu.Unlock()
	}
	return ps, nil
}

func toSet(s []string) map[string]struct{} {
	m := make(map[string]struct{}, len(s))
	for _, v := range s {
		m[v] = struct{}{}
	}
	return m
}

// receiveLoop is the only reader of the subscription. go-redis reconnects
// and resubscribes inside Receive; the loop counts the outages and waits
// between attempts so a dead Redis costs no busy loop.
func (b *pubsub) receiveLoop(ps *redis.PubSub, handler Handler) {
	channels, patterns := b.base()
	base := append(append([]string(nil), channels...), patterns...)
	var pending map[string]struct{}
	var bo backoff
	down := func(err error) {
		if b.health.down(err) || pending == nil {
			pending = toSet(base)
		}
		if b.in != nil {
			b.in.unconfirm()
		}
	}
	pinged := false
	for {
		msg, err := receive(b.ctx, ps, pinged)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				// Quiet line: make sure it is still alive; the pong (or
				// any message) within pongTimeout proves it.
				if perr := ps.Ping(b.ctx); perr != nil {
					down(perr)
				} else {
					pinged = true
				}
				continue
			}
			pinged = false
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			down(err)
			if !bo.Wait(b.ctx) {
				return
			}
			continue
		}
		pinged = false
		bo.Reset()
		switch m := msg.(type) {
		case *redis.Subscription:
			if b.in != nil && m.Kind == "subscribe" {
				b.in.confirm(m.Channel)
			}
			if pending != nil && (m.Kind == "subscribe" || m.Kind == "psubscribe") {
				delete(pending, m.Channel)
				if len(pending) == 0 {
					pending = nil
					b.restored()
				}
			}
		case *redis.Message:
			handler(m.Channel, []byte(m.Payload))
		}
	}
}

// restoreWait bounds how long the end of an outage waits for the wanted
// channels' confirmations before it is declared anyway.
const restoreWait = 5 * time.Second

// restored ends an outage once the base channels are back. In interest mode
// it first waits (on a goroutine of its own, at most restoreWait) until
// every wanted channel is confirmed again, so that "live" means a publish
// now reaches this instance's rooms, users and clients too.
func (b *pubsub) restored() {
	if b.in == nil {
		b.health.up()
		return
	}
	gen := b.health.generation()
	chans := b.in.desiredList()
	b.goRun(func() {
		ctx, cancel := context.WithTimeout(b.ctx, restoreWait)
		defer cancel()
		b.in.await(ctx, chans)
		if b.ctx.Err() == nil {
			b.health.upIf(gen)
		}
	})
}

// interestLoop keeps the subscription equal to the wanted set.
func (b *pubsub) interestLoop(ps *redis.PubSub) {
	in := b.in
	subscribed := map[string]bool{}
	// The base channels were subscribed by Start.
	channels, _ := b.base()
	for _, ch := range channels {
		subscribed[ch] = true
	}
	for {
		select {
		case <-b.ctx.Done():
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
			if err := ps.Subscribe(b.ctx, add[:n]...); err != nil && b.ctx.Err() == nil {
				b.log.Debug("redis subscribe deferred to reconnect", zap.Error(err))
			}
			add = add[n:]
		}
		for len(remove) > 0 {
			n := min(len(remove), subscribeBatch)
			if err := ps.Unsubscribe(b.ctx, remove[:n]...); err != nil && b.ctx.Err() == nil {
				b.log.Debug("redis unsubscribe deferred to reconnect", zap.Error(err))
			}
			remove = remove[n:]
		}
	}
}

func (b *pubsub) Want(channel string) {
	if b.in != nil && !b.isBase(channel) {
		b.in.set(channel, true)
	}
}

func (b *pubsub) Unwant(channel string) {
	if b.in != nil && !b.isBase(channel) {
		b.in.set(channel, false)
	}
}

// isBase: the base channels stay subscribed whatever the caller wants.
func (b *pubsub) isBase(channel string) bool {
	return channel == protocol.ChannelBroadcast || channel == protocol.ChannelControl
}

func (b *pubsub) Await(ctx context.Context, channels []string) {
	if b.in == nil || !b.health.live.Load() {
		return
	}
	b.in.await(ctx, channels)
}

func (b *pubsub) Publish(ctx context.Context, channel string, payload []byte) error {
	return b.pub.publish(ctx, b.health.live.Load(), channel, payload)
}

func (b *pubsub) Health() Health { return b.health.get() }

func (b *pubsub) Close() {
	b.mu.Lock()
	b.closed = true
	ps := b.ps
	b.mu.Unlock()
	b.cancel()
	if ps != nil {
		_ = ps.Close()
	}
	b.wg.Wait()
	b.pub.stop()
	b.health.stopped()
}
