package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// shards is the sharded mode: Redis Cluster's sharded Pub/Sub (SPUBLISH,
// SSUBSCRIBE). A Redis Cluster node accepts
// SSUBSCRIBE only for the slots it serves, one slot per command, so there is
// one PubSub per master node, each read by its own receive loop, and every
// channel is subscribed on its own. The interest set says which channels are
// wanted; shardLoop, the only goroutine that subscribes, places each wanted
// channel on the master of its slot.
//
// go-redis resubscribes a PubSub after a reconnect with one SSUBSCRIBE naming
// all its channels, which a cluster refuses (CROSSSLOT, or MOVED when a slot
// has gone); such refusals, and reconnects, make shardLoop subscribe every
// channel of that node again, one by one, on whatever node serves it now.
type shards struct {
	cc      *redis.ClusterClient
	opts    Options
	log     *zap.Logger
	in      *interest
	health  health
	pub     *publisher
	handler Handler // set by Start before any receive loop runs

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// startMu makes Start exclusive; it is held across Start's I/O, but
	// only Start takes it.
	startMu sync.Mutex
	started bool

	// healthMu serialises the subscribed/not subscribed transitions, which
	// several receive loops may want at once.
	healthMu sync.Mutex

	mu     sync.RWMutex
	closed bool
	// running is set once Start has succeeded: nodes created from then on
	// get their receive loop at once.
	running bool
	nodes   map[string]*shardNode // by node address
	// assigned is the node each subscribed channel is subscribed on; a
	// message for a channel that is not assigned to the node that received
	// it is dropped, so a stale subscription cannot deliver twice.
	assigned map[string]*shardNode
	resync   map[*shardNode]struct{} // nodes whose channels shardLoop subscribes again
	reload   bool                    // shardLoop reloads the slot map first
}

// shardNode is one master's PubSub and what is subscribed on it. Its fields
// other than addr and ps are guarded by shards.mu.
type shardNode struct {
	addr  string
	ps    *redis.PubSub
	chans map[string]struct{}
	// unsubs counts the SUNSUBSCRIBE replies still due for our own
	// commands; any other sunsubscribe means Redis moved the slot away.
	unsubs map[string]int
	// down is set when the connection failed and cleared when it serves
	// again (a confirmation or a message arrived).
	down bool
}

// NewSharded returns the sharded-mode bus on a Redis Cluster client (rdb
// must be a *redis.ClusterClient, else ErrNeedsCluster).
func NewSharded(rdb redis.UniversalClient, o Options) (Bus, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok || cc == nil {
		return nil, ErrNeedsCluster
	}
	o = o.withDefaults()
	s := &shards{
		cc:       cc,
		opts:     o,
		log:      o.Logger,
		in:       newInterest(),
		nodes:    map[string]*shardNode{},
		assigned: map[string]*shardNode{},
	}
	s.health = health{log: o.Logger, events: o.Events}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pub = newPublisher(o, publishWith(cc, true))
	return s, nil
}

// Start subscribes ws:broadcast on its master and waits for it (see
// subscribe), starts the loops, then wants ws:control like any channel and
// waits for it too (within ctx and StartTimeout), so that a fleet-wide
// disconnect sent right after start-up reaches this instance.
func (s *shards) Start(ctx context.Context, handler Handler) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.started {
		return errors.New("bus: Start called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	s.handler = handler
	if err := s.subscribe(ctx); err != nil {
		if s.ctx.Err() != nil {
			return ErrClosed
		}
		return err
	}
	s.mu.Lock()
	if s.closed {
		// Close ran while subscribe registered its node: close it here.
		for _, n := range s.nodes {
			_ = n.ps.Close()
		}
		s.mu.Unlock()
		return ErrClosed
	}
	s.running = true
	s.health.started()
	for _, n := range s.nodes {
		s.goRun(func() { s.nodeLoop(n) })
	}
	s.goRun(s.loop)
	s.goRun(func() { s.pub.run(s.ctx) })
	s.mu.Unlock()
	s.started = true
	s.in.set(protocol.ChannelControl, true)
	wait, cancelWait := context.WithTimeout(ctx, s.opts.StartTimeout)
	s.in.await(wait, []string{protocol.ChannelControl})
	cancelWait()
	return nil
}

// goRun starts f counted by wg. s.mu is held and s.closed is false, so
// Close is not waiting yet.
func (s *shards) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *shards) Want(channel string) {
	if channel != protocol.ChannelBroadcast && channel != protocol.ChannelControl {
		s.in.set(channel, true)
	}
}

func (s *shards) Unwant(channel string) {
	if channel != protocol.ChannelBroadcast && channel != protocol.ChannelControl {
		s.in.set(channel, false)
	}
}

func (s *shards) Await(ctx context.Context, channels []string) {
	if s.health.live.Load() {
		s.in.await(ctx, channels)
	}
}

func (s *shards) Publish(ctx context.Context, channel string, payload []byte) error {
	return s.pub.publish(ctx, s.health.live.Load(), channel, payload)
}

func (s *shards) Health() Health { return s.health.get() }

// Close closes every node's PubSub, which ends its receive loop (no node
// is added afterwards), and waits for the goroutines.
func (s *shards) Close() {
	s.mu.Lock()
	s.closed = true
	nodes := make([]*shardNode, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	s.cancel()
	for _, n := range nodes {
		_ = n.ps.Close()
	}
	s.wg.Wait()
	s.pub.stop()
	s.health.stopped()
}

// subscribe is Start's first part: it subscribes ws:broadcast on its master and
// waits for the confirmation. A refusal that no retry can fix
// (permanentRedisError) ends it at once with a *RedisRefusedError; other
// failures are logged and retried until StartTimeout. Nothing is started
// unless it succeeds.
func (s *shards) subscribe(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	addr := redisconn.Addr(s.cc)
	retries := newStartRetries(s.log, addr, start)
	var bo backoff
	for {
		node, ps, err := s.trySubscribe(ctx, protocol.ChannelBroadcast)
		if err == nil {
			s.register(node, ps, protocol.ChannelBroadcast)
			return nil
		}
		if permanentRedisError(err) {
			return &RefusedError{Addr: addr, Err: err}
		}
		if ctx.Err() != nil {
			return startError(addr, start, retries, err, ctx.Err())
		}
		retries.failed(err, false)
		bo.Wait(ctx)
	}
}

// trySubscribe subscribes ch on the master of its slot and waits for the
// confirmation. On failure the PubSub is closed.
func (s *shards) trySubscribe(ctx context.Context, ch string) (string, *redis.PubSub, error) {
	node, err := s.cc.MasterForKey(ctx, ch)
	if err != nil {
		return "", nil, err
	}
	// The command's error, if any, is what Receive returns next.
	ps := node.SSubscribe(ctx, ch)
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if isTimeout(err) && ctx.Err() == nil {
				continue
			}
			_ = ps.Close()
			if isRedisError(err) && !permanentRedisError(err) {
				// MOVED: the slot map was stale.
				s.reloadTopology(ctx)
			}
			return "", nil, err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "ssubscribe" && m.Channel == ch {
				return node.Options().Addr, ps, nil
			}
		case *redis.Message:
			s.handler(m.Channel, []byte(m.Payload))
		}
	}
}

// register records the node of Configure's first subscription.
func (s *shards) register(addr string, ps *redis.PubSub, ch string) {
	n := &shardNode{addr: addr, ps: ps, chans: map[string]struct{}{ch: {}}, unsubs: map[string]int{}}
	s.mu.Lock()
	s.nodes[addr] = n
	s.assigned[ch] = n
	s.mu.Unlock()
	s.in.mu.Lock()
	s.in.desired[ch] = true
	s.in.confirmed[ch] = true
	s.in.mu.Unlock()
}

// nodeLocked returns the node at addr, creating it (and starting its
// receive loop) when it is new. It returns nil once closed. s.mu is held.
func (s *shards) nodeLocked(addr string, c *redis.Client) *shardNode {
	if s.closed {
		return nil
	}
	if n := s.nodes[addr]; n != nil {
		return n
	}
	// Without channels SSubscribe only builds the PubSub; the connection
	// is made by the first command or Receive.
	n := &shardNode{addr: addr, ps: c.SSubscribe(s.ctx), chans: map[string]struct{}{}, unsubs: map[string]int{}}
	s.nodes[addr] = n
	if s.running {
		s.goRun(func() { s.nodeLoop(n) })
	}
	return n
}

func (s *shards) wake() { s.in.poke() }

// reloadTopology reloads the cluster's slot map now (ForEachMaster reloads
// it before it runs; it waits for its own goroutines).
func (s *shards) reloadTopology(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.TopologyTimeout)
	defer cancel()
	_ = s.cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil })
}

// loop is shardLoop: it keeps the subscriptions equal to the interest set
// and places channels again when a node asks for it.
func (s *shards) loop() {
	var bo backoff
	var retry <-chan time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.in.wake:
		case <-retry:
			retry = nil
		}
		if s.reconcile() {
			if retry == nil {
				retry = time.After(bo.Next())
			}
		} else {
			bo.Reset()
		}
	}
}

// reconcile sends the SSUBSCRIBE and SUNSUBSCRIBE commands that bring the
// nodes to the interest set. It reports whether some channel could not be
// placed (the cluster is unreachable) and must be tried again.
func (s *shards) reconcile() (retry bool) {
	ctx := s.ctx
	in := s.in

	s.mu.Lock()
	resync := s.resync
	s.resync = nil
	reload := s.reload
	s.reload = false
	s.mu.Unlock()
	if reload {
		s.reloadTopology(ctx)
	}

	type change struct {
		ch   string
		want bool
	}
	in.mu.Lock()
	changes := make([]change, 0, len(in.dirty))
	for ch := range in.dirty {
		want := in.desired[ch]
		changes = append(changes, change{ch, want})
		if !want {
			delete(in.confirmed, ch)
		}
	}
	clear(in.dirty)
	in.mu.Unlock()

	place := map[string]struct{}{}
	unsubs := map[*shardNode][]string{}
	s.mu.Lock()
	for _, c := range changes {
		n := s.assigned[c.ch]
		switch {
		case c.want && n == nil:
			place[c.ch] = struct{}{}
		case !c.want && n != nil:
			delete(s.assigned, c.ch)
			delete(n.chans, c.ch)
			n.unsubs[c.ch]++
			unsubs[n] = append(unsubs[n], c.ch)
		}
	}
	for n := range resync {
		for ch := range n.chans {
			place[ch] = struct{}{}
		}
	}
	s.mu.Unlock()

	// The slot map is local: MasterForKey does no I/O once it is loaded.
	type target struct {
		ch     string
		addr   string
		client *redis.Client
	}
	targets := make([]target, 0, len(place))
	var failed []string
	var lastErr error
	for ch := range place {
		c, err := s.cc.MasterForKey(ctx, ch)
		if err != nil {
			failed = append(failed, ch)
			lastErr = err
			continue
		}
		targets = append(targets, target{ch, c.Options().Addr, c})
	}

	subs := map[*shardNode][]string{}
	s.mu.Lock()
	for _, t := range targets {
		n := s.nodeLocked(t.addr, t.client)
		if n == nil {
			s.mu.Unlock()
			return false
		}
		if old := s.assigned[t.ch]; old != nil && old != n {
			// The slot left old while it was disconnected.
			delete(old.chans, t.ch)
		}
		s.assigned[t.ch] = n
		n.chans[t.ch] = struct{}{}
		subs[n] = append(subs[n], t.ch)
	}
	s.mu.Unlock()

	if len(failed) > 0 {
		in.mu.Lock()
		for _, ch := range failed {
			in.dirty[ch] = struct{}{}
		}
		in.mu.Unlock()
		if ctx.Err() == nil {
			s.log.Debug("redis shard channels not placed; retrying", zap.Int("channels", len(failed)), zap.Error(lastErr))
		}
	}

	// go-redis records each channel even when the command fails; refusals
	// and reconnects come back through the receive loop as a resync.
	for n, chs := range unsubs {
		for _, ch := range chs {
			if err := n.ps.SUnsubscribe(ctx, ch); err != nil && ctx.Err() == nil {
				s.log.Debug("redis sunsubscribe deferred to reconnect", zap.String("node", n.addr), zap.Error(err))
			}
		}
	}
	for n, chs := range subs {
		for _, ch := range chs {
			if err := n.ps.SSubscribe(ctx, ch); err != nil && ctx.Err() == nil {
				s.log.Debug("redis ssubscribe deferred to reconnect", zap.String("node", n.addr), zap.Error(err))
			}
		}
	}
	return len(failed) > 0
}

// nodeLoop is the only reader of one node's PubSub.
func (s *shards) nodeLoop(n *shardNode) {
	var bo backoff
	// reconnected is set by a failure: the next sign of a live connection
	// asks shardLoop to subscribe this node's channels again, since
	// go-redis' own resubscription is refused by a cluster.
	reconnected := false
	alive := func() {
		if reconnected {
			reconnected = false
			s.requestResync(n, false)
		}
	}
	pinged := false
	for {
		msg, err := receive(s.ctx, n.ps, pinged)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			switch {
			case isTimeout(err) && !pinged:
				// Quiet line: make sure it is still alive; the pong (or
				// any message) within pongTimeout proves it.
				if perr := n.ps.Ping(s.ctx); perr != nil {
					s.nodeDown(n, perr)
					reconnected = true
				} else {
					pinged = true
				}
				continue
			case errors.Is(err, redis.ErrClosed):
				return
			case isRedisError(err):
				// The node refused a command: a slot moved (MOVED) or
				// go-redis resubscribed everything at once (CROSSSLOT).
				if ce := s.log.Check(zap.DebugLevel, "redis shard subscription refused; placing channels again"); ce != nil {
					ce.Write(zap.String("node", n.addr), zap.Error(err))
				}
				reconnected = false
				s.requestResync(n, true)
			default:
				s.nodeDown(n, err)
				reconnected = true
				// The node may be gone for good (a master that failed
				// over): place its channels again from a fresh slot map.
				// While it still owns their slots they come back to it,
				// and the next failure asks again.
				s.requestResync(n, true)
			}
			pinged = false
			if !bo.Wait(s.ctx) {
				return
			}
			continue
		}
		pinged = false
		bo.Reset()
		alive()
		switch m := msg.(type) {
		case *redis.Pong:
			s.nodeServing(n, false)
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				s.confirm(n, m.Channel)
			case "sunsubscribe":
				s.unsubscribed(n, m.Channel)
			}
		case *redis.Message:
			s.mu.RLock()
			mine, down := s.assigned[m.Channel] == n, n.down
			s.mu.RUnlock()
			if mine {
				if down {
					s.nodeServing(n, true)
				}
				s.handler(m.Channel, []byte(m.Payload))
			}
		}
	}
}

// requestResync asks shardLoop to subscribe n's channels again, reloading
// the slot map first when reload is set.
func (s *shards) requestResync(n *shardNode, reload bool) {
	s.mu.Lock()
	if s.resync == nil {
		s.resync = map[*shardNode]struct{}{}
	}
	s.resync[n] = struct{}{}
	s.reload = s.reload || reload
	s.mu.Unlock()
	s.wake()
}

// nodeDown records a failed connection: its channels are unconfirmed until
// Redis confirms them again.
func (s *shards) nodeDown(n *shardNode, err error) {
	s.mu.Lock()
	n.down = true
	clear(n.unsubs) // the replies died with the connection
	chans := make([]string, 0, len(n.chans))
	for ch := range n.chans {
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	s.in.mu.Lock()
	for _, ch := range chans {
		delete(s.in.confirmed, ch)
	}
	s.in.mu.Unlock()
	s.updateHealth(fmt.Errorf("redis node %s: %w", n.addr, err))
}

// nodeServing clears n's down mark: on a confirmation or message, or (when
// confirmed is false) on a live connection of a node with no channels.
func (s *shards) nodeServing(n *shardNode, confirmed bool) {
	s.mu.Lock()
	was := n.down
	if confirmed || len(n.chans) == 0 {
		n.down = false
	}
	changed := was && !n.down
	s.mu.Unlock()
	if changed {
		s.updateHealth(nil)
	}
}

// confirm records Redis' confirmation of ch on n.
func (s *shards) confirm(n *shardNode, ch string) {
	s.mu.RLock()
	mine, down := s.assigned[ch] == n, n.down
	s.mu.RUnlock()
	if !mine {
		return
	}
	s.in.confirm(ch)
	if down {
		s.nodeServing(n, true)
	}
	if ch == protocol.ChannelBroadcast {
		s.updateHealth(nil)
	}
}

// unsubscribed handles a sunsubscribe from n: the reply to our own
// SUNSUBSCRIBE, or Redis telling us the channel's slot has moved to another
// node, in which case the channel is placed again.
func (s *shards) unsubscribed(n *shardNode, ch string) {
	s.mu.Lock()
	if k := n.unsubs[ch]; k > 0 {
		if k == 1 {
			delete(n.unsubs, ch)
		} else {
			n.unsubs[ch] = k - 1
		}
		s.mu.Unlock()
		return
	}
	moved := s.assigned[ch] == n
	if moved {
		delete(s.assigned, ch)
		delete(n.chans, ch)
		s.reload = true
	}
	s.mu.Unlock()
	if !moved {
		return
	}
	s.log.Info("redis shard channel moved; subscribing again", zap.String("channel", ch), zap.String("node", n.addr))
	s.in.mu.Lock()
	delete(s.in.confirmed, ch)
	s.in.dirty[ch] = struct{}{}
	s.in.mu.Unlock()
	s.wake()
	if ch == protocol.ChannelBroadcast {
		s.updateHealth(errors.New("ws:broadcast moved to another node"))
	}
}

// updateHealth sets the bus' live state: up when ws:broadcast is
// confirmed and no node that has channels is down.
func (s *shards) updateHealth(reason error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	ok := true
	s.mu.RLock()
	for _, n := range s.nodes {
		if n.down && len(n.chans) > 0 {
			ok = false
			break
		}
	}
	s.mu.RUnlock()
	if ok {
		s.in.mu.Lock()
		ok = s.in.confirmed[protocol.ChannelBroadcast]
		s.in.mu.Unlock()
	}
	if ok {
		s.health.up()
		return
	}
	if reason == nil {
		reason = errors.New("ws:broadcast not confirmed")
	}
	s.health.down(reason)
}
