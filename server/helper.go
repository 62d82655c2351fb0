package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/bus"
	"github.com/ignis-go/wscomponent/internal/wsframe"
)

// Helper is the WebSocket server helper. It is an http.Handler that upgrades
// requests on the path it is mounted on. Create it with New, start it with
// Configure and stop it with Shutdown; all methods are safe for concurrent use.
type Helper struct {
	cfg      Config
	opts     Options
	log      *zap.Logger
	serverID string
	// rdb is the Redis connection (nil on the local bus). Only presence
	// uses it directly (a key-value store, not Pub/Sub); messages go
	// through bus.
	rdb      redis.UniversalClient
	upgrader websocket.Upgrader
	// bus carries messages to and from the other instances; the server
	// does not know which mode it runs (see newBus).
	bus bus.Bus

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	// state is the lifecycle (stateNew → stateStarting → stateRunning →
	// stateClosed, or back to stateNew when Configure fails). It is an
	// atomic so that Health and publishes read it without waiting for a
	// Configure that waits for Redis.
	state atomic.Int32
	// startSem lets one Configure run at a time; only Configure takes it.
	startSem  chan struct{}
	stopped   chan struct{} // closed when the first Shutdown has finished
	stopErr   error         // written before stopped is closed
	accepting atomic.Bool
	pending   atomic.Int64 // connections not yet authenticated

	conns  group // handler, reader, writer, auth, transform and delivery goroutines
	bg     group // sweeper (the bus runs and joins its own goroutines)
	outEnv outboxEnv

	// mu guards the indexes below and client.rooms / client.removed.
	mu      sync.RWMutex
	clients map[string]*client
	users   map[string]members
	rooms   map[string]members

	stats    counters
	samples  sampler        // log sampling of client-caused events
	presence *presenceQueue // nil unless Config.PresenceRooms is set
	hist     historyState   // per history room, the last offset delivered here
	// polls reads connections without a goroutine each (Linux; nil when
	// Config.Pollers is Off or elsewhere).
	polls *pollSet
}

// New builds a Helper from opts. It checks the options but does not touch
// the network; Configure does.
func New(opts Options) (*Helper, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	switch {
	case opts.LocalBus && opts.Redis != nil:
		return nil, ErrLocalBusWithRedis
	case opts.Redis == nil && !opts.LocalBus:
		return nil, ErrNoRedis
	case opts.LocalBus && opts.PresenceRooms != nil:
		return nil, ErrPresenceNeedsRedis
	case opts.LocalBus && opts.HistoryFor != nil:
		return nil, ErrHistoryNeedsRedis
	}
	if opts.Authenticate == nil {
		return nil, ErrNoAuthenticate
	}
	if opts.RequireEncryption && (opts.Handshake == nil || opts.OutboundTransformer == nil) {
		return nil, ErrEncryptionSetup
	}
	cfg := opts.Config.withDefaults()
	switch cfg.RedisRouting {
	case RoutingInterest, RoutingPattern, RoutingSharded:
	default:
		return nil, fmt.Errorf("server: RedisRouting %q: want %q, %q or %q",
			cfg.RedisRouting, RoutingInterest, RoutingPattern, RoutingSharded)
	}
	if cfg.HistoryFor != nil && cfg.RedisRouting == RoutingSharded {
		return nil, errors.New("server: HistoryFor is not available with RedisRouting sharded " +
			"(a history publish is a script whose PUBLISH sharded subscribers do not see)")
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	h := &Helper{
		cfg:      cfg,
		opts:     opts,
		log:      logger.Named(cfg.Identifier),
		serverID: uuid.NewString(),
		rdb:      opts.Redis,
		startSem: make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		clients:  make(map[string]*client),
		users:    make(map[string]members),
		rooms:    make(map[string]members),
		samples:  sampler{burst: cfg.LogSampleBurst},
	}
	// Every context given to a callback carries the Helper, so a handler
	// need not depend on it (which fx would call a cycle).
	h.ctx, h.cancel = context.WithCancel(context.WithValue(context.Background(), helperKey{}, h))
	b, err := h.newBus(opts)
	if err != nil {
		return nil, err
	}
	h.bus = b
	h.outEnv = outboxEnv{
		limit:        cfg.BackpressureLimit,
		closeOnLimit: cfg.CloseOnBackpressureLimit,
		writeTimeout: cfg.WriteTimeout,
		stats:        &h.stats,
		spawn:        h.conns.goAlways,
	}
	if obs := opts.Observer; obs != nil {
		h.outEnv.observe = obs.ObserveOutbox
	}
	if cfg.PresenceRooms != nil {
		h.presence = &presenceQueue{wake: make(chan struct{}, 1)}
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout:  cfg.WriteTimeout,
		ReadBufferSize:    readBufferSize,
		WriteBufferSize:   writeBufferSize,
		WriteBufferPool:   writeBufferPool,
		EnableCompression: cfg.PerMessageDeflate,
		CheckOrigin:       h.checkOrigin(originPolicy(cfg)),
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, http.StatusText(status), status)
		},
	}
	if cfg.Pollers != Off && pollSupported {
		ps, err := newPollSet(h, cfg.Pollers)
		if err != nil {
			h.log.Warn("event-driven reads unavailable: every connection gets a reader goroutine", zap.Error(err))
		} else {
			h.polls = ps
		}
	}
	return h, nil
}

// Buffer sizes: frames are small JSON, so small buffers keep idle
// connections cheap; larger frames are read and written in pieces.
const (
	readBufferSize  = 1024
	writeBufferSize = 4096
)

var writeBufferPool = &sync.Pool{}

// originPolicy returns the CheckOrigin function for cfg: cfg.CheckOrigin if
// set, else same-origin (or no Origin header) plus cfg.AllowedOrigins.
func originPolicy(cfg Config) func(*http.Request) bool {
	if cfg.CheckOrigin != nil {
		return cfg.CheckOrigin
	}
	allowed := make(map[string]bool, len(cfg.AllowedOrigins))
	for _, o := range cfg.AllowedOrigins {
		allowed[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || allowed["*"] || allowed[strings.ToLower(origin)] {
			return true
		}
		u, err := url.Parse(origin)
		if err != nil {
			return false
		}
		return strings.EqualFold(u.Host, r.Host)
	}
}

// checkOrigin wraps the origin policy so that refusals are logged (sampled).
func (h *Helper) checkOrigin(policy func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if policy(r) {
			return true
		}
		h.sampled(sampleOrigin, "upgrade refused: origin not allowed",
			zap.String("origin", r.Header.Get("Origin")), zap.String("remote_addr", r.RemoteAddr))
		return false
	}
}

type helperKey struct{}

// FromContext returns the Helper that called a callback with ctx (every
// context the Helper passes to a callback carries it), or nil. A message
// handler uses it to reply without depending on the Helper, which in fx
// would be a dependency cycle.
func FromContext(ctx context.Context) *Helper {
	h, _ := ctx.Value(helperKey{}).(*Helper)
	return h
}

// ServerID is this instance's random id on Redis.
func (h *Helper) ServerID() string { return h.serverID }

// Config returns the effective configuration (defaults filled in).
func (h *Helper) Config() Config { return h.cfg }

// Lifecycle states (Helper.state).
const (
	stateNew int32 = iota
	stateStarting
	stateRunning
	stateClosed
)

// Configure starts the bus: with Redis it subscribes (waiting for the
// confirmations, at most RedisTimeout), with the local bus it returns at
// once; then it starts the background loops. After it returns the Helper
// accepts connections. A second call does nothing; concurrent calls wait
// for each other (within their contexts), and Health, publishes and
// Shutdown never wait for them: Health and publishes answer
// ErrNotConfigured meanwhile, and Shutdown ends the wait (Configure then
// returns ErrClosed).
func (h *Helper) Configure(ctx context.Context) error {
	select {
	case h.startSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-h.stopped:
		return ErrClosed
	}
	defer func() { <-h.startSem }()
	switch h.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return ErrClosed
	}
	if !h.state.CompareAndSwap(stateNew, stateStarting) {
		return ErrClosed
	}
	if err := h.bus.Start(ctx, h.handleBusMessage); err != nil {
		h.state.CompareAndSwap(stateStarting, stateNew)
		if errors.Is(err, bus.ErrClosed) {
			return ErrClosed
		}
		return err
	}
	// Shutdown may have begun meanwhile: it then owns the bus (and has
	// stopped bg, so tryGo refuses).
	if h.polls != nil && !h.polls.start(&h.bg) {
		return ErrClosed
	}
	if !h.bg.tryGo(h.sweepLoop) || !h.state.CompareAndSwap(stateStarting, stateRunning) {
		return ErrClosed
	}
	if h.presence != nil && !h.bg.tryGo(h.presenceLoop) {
		return ErrClosed
	}
	h.accepting.Store(true)
	if h.state.Load() == stateClosed {
		h.accepting.Store(false)
	}
	h.log.Info("websocket server configured",
		zap.String("server_id", h.serverID), zap.String("path", h.cfg.Path))
	return nil
}

// Shutdown refuses new connections at once, closes every client with 1001
// "Server shutting down" (spread over DrainWindow if set) after what is
// already queued for it, waits for the disconnect callbacks, closes the
// bus (the Redis subscriptions) and waits for every goroutine of the
// Helper. If ctx ends first, the remaining sockets are dropped without a
// close frame and ctx's error is returned. Calling it again (also
// concurrently) waits for the first call and returns its result; calling
// it before or during Configure is safe (a Configure under way then
// returns ErrClosed).
func (h *Helper) Shutdown(ctx context.Context) error {
	if h.state.Swap(stateClosed) == stateClosed {
		select {
		case <-h.stopped:
			return h.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.accepting.Store(false)
	h.stopErr = h.shutdownNow(ctx)
	close(h.stopped)
	return h.stopErr
}

func (h *Helper) shutdownNow(ctx context.Context) error {

	h.conns.stop()
	h.drain(ctx)
	err := h.conns.wait(ctx)
	if err != nil {
		// Out of time: drop the sockets so readers return at once, and
		// give them a moment. A callback that never returns keeps its
		// goroutine; Shutdown still returns.
		for _, c := range h.allClients() {
			c.cancel() // tell callbacks still running for it
			c.mu.Lock()
			cancelAuth := c.authCancel
			c.mu.Unlock()
			if cancelAuth != nil {
				cancelAuth()
			}
			c.sock.close()
		}
		grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		_ = h.conns.wait(grace)
		cancel()
	}
	h.cancel()
	if h.polls != nil {
		h.polls.close() // no connection is left to poll
	}
	h.bg.stop()
	// Close ends a Configure still waiting for Redis too.
	h.bus.Close()
	_ = h.bg.wait(context.Background())

	h.mu.Lock()
	clear(h.clients)
	clear(h.users)
	clear(h.rooms)
	h.mu.Unlock()
	h.log.Info("websocket server stopped")
	return err
}

// shutdownGrace is how long Shutdown waits for connection goroutines after
// its context has ended and the sockets were dropped.
const shutdownGrace = time.Second

// drain closes every client with 1001, in DrainBatches batches spread over
// DrainWindow when one is set. If ctx ends first the rest go at once.
func (h *Helper) drain(ctx context.Context) {
	clients := h.allClients()
	batches := 1
	if h.cfg.DrainWindow > 0 && len(clients) > 1 {
		batches = min(h.cfg.DrainBatches, len(clients))
	}
	per := (len(clients) + batches - 1) / batches
	var pause <-chan time.Time
	for i := 0; i < len(clients); i += per {
		if i > 0 && ctx.Err() == nil {
			t := time.NewTimer(h.cfg.DrainWindow / time.Duration(batches))
			pause = t.C
			select {
			case <-pause:
			case <-ctx.Done():
			}
			t.Stop()
		}
		for _, c := range clients[i:min(i+per, len(clients))] {
			c.close(DisconnectShutdown, false)
		}
	}
}

// ServeHTTP upgrades the request and serves the connection until it ends.
// Before Configure and after Shutdown it answers 503.
func (h *Helper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.accepting.Load() || !h.conns.enter() {
		http.Error(w, "websocket server not accepting connections", http.StatusServiceUnavailable)
		return
	}
	defer h.conns.leave()
	if max := h.cfg.MaxPendingConnections; max > 0 && h.pending.Add(1) > int64(max) {
		h.pending.Add(-1)
		h.stats.refusedPending.Add(1)
		http.Error(w, "too many connections waiting to authenticate", http.StatusServiceUnavailable)
		return
	} else if max <= 0 {
		h.pending.Add(1)
	}
	// gorilla gets a connection whose writes, after the handshake, go to
	// the client's outbox (see sockConn).
	hw := &hijackWriter{ResponseWriter: w}
	conn, err := h.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		h.pending.Add(-1)
		h.log.Debug("upgrade failed", zap.Error(err))
		return
	}
	// The connection gets a goroutine of its own and this handler returns,
	// so that net/http's per-connection state (its buffered reader and
	// writer, a deep stack) is freed while the WebSocket lives on.
	h.conns.goAlways(func() { h.serveConn(conn, hw.conn, r) })
}

func (h *Helper) serveConn(conn *websocket.Conn, sc *sockConn, r *http.Request) {
	c := newClient(h, uuid.NewString(), conn, sc, r)
	c.pending = true
	// A plain TCP connection without permessage-deflate is read by a
	// poller (Linux): this goroutine ends once it is registered, and
	// gorilla's Conn, with its buffers, is let go.
	var pc *pollConn
	if h.polls != nil && !sc.deflate && c.sock.rc != nil {
		pc = &pollConn{c: c}
		pc.rd.Init(wsframe.Config{MaxMessageSize: h.cfg.MaxPayloadLength})
		pc.touch()
		c.sock.pc = pc
		c.conn = nil
	}
	sc.c = c // from now on gorilla's writes go to c's outbox
	h.mu.Lock()
	h.clients[c.id] = c
	h.mu.Unlock()
	h.stats.accepted.Add(1)

	c.mu.Lock()
	c.authTimer = time.AfterFunc(h.cfg.AuthTimeout, func() {
		h.sampled(sampleAuthTimeout, "client closed: authentication timeout", zap.String("client_id", c.id))
		c.close(DisconnectAuthTimeout, false)
	})
	c.mu.Unlock()

	if pc != nil {
		h.conns.enterAlways() // until pc.end
		if !h.polls.add(pc) {
			pc.hangup()
		}
		return
	}
	h.readLoop(c)
	h.finish(c)
}

// readLoop reads frames until the connection fails or closes.
func (h *Helper) readLoop(c *client) {
	conn := c.conn
	idle := h.cfg.IdleTimeout
	_ = conn.SetReadDeadline(time.Now().Add(idle))
	conn.SetPongHandler(func(string) error {
		if !c.isClosing() {
			_ = conn.SetReadDeadline(time.Now().Add(idle))
		}
		return nil
	})
	conn.SetPingHandler(func(data string) error {
		if !c.isClosing() {
			_ = conn.SetReadDeadline(time.Now().Add(idle))
		}
		c.sendControl(framePong, []byte(data))
		return nil
	})
	// Answer the peer's close through the outbox and give it a moment to
	// go out before the reader returns.
	conn.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		c.close(Disconnect{Code: code}, true)
		c.out.waitClosed(closeEchoWait)
		return nil
	})
	for {
		mt, data, tooBig, err := c.readMessage(h.cfg.MaxPayloadLength)
		if err != nil {
			h.logDebug("read ended", c.id, err)
			return
		}
		if c.isClosing() {
			continue
		}
		if tooBig {
			h.sampled(sampleOversize, "client closed: frame over MaxPayloadLength", zap.String("client_id", c.id))
			c.close(DisconnectTooBig, true)
			continue
		}
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			// RFC 6455 §8.1: a text frame must be UTF-8.
			c.close(DisconnectInvalidUTF8, false)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		h.onMessage(c, data)
	}
}

// onMessage takes a data message read from c (either read side): counts it,
// applies the rate limit and handles it.
func (h *Helper) onMessage(c *client, data []byte) {
	if c.isClosing() {
		return
	}
	now := time.Now()
	c.lastActivity.Store(now.UnixNano())
	h.stats.in.Add(1)
	if h.cfg.MessageRate > 0 && !c.allow(now, h.cfg.MessageRate, h.cfg.MessageBurst) {
		h.stats.rateLimited.Add(1)
		h.sampled(sampleRateLimit, "client closed: rate limit exceeded", zap.String("client_id", c.id))
		c.closeAfter(errorFrame(protocol.ErrMsgRateLimited, ""), DisconnectRateLimited, false)
		return
	}
	h.handleFrame(c, data)
}

// closeEchoWait bounds how long the reader waits for the echo of a close the
// peer started to be written.
const closeEchoWait = time.Second

// finish runs once per connection when reading has ended: it removes the
// client from every index and calls ClientDisconnected.
func (h *Helper) finish(c *client) {
	c.mu.Lock()
	c.closing = true
	wasAuthenticated := c.state == protocol.StateAuthenticated
	c.state = protocol.StateDisconnected
	c.stopTimersLocked()
	cancelAuth := c.authCancel
	c.authCancel = nil
	userID := c.userID
	if c.pending {
		c.pending = false
		h.pending.Add(-1)
	}
	c.mu.Unlock()
	if cancelAuth != nil {
		cancelAuth()
	}
	c.out.stop() // drops what is queued and closes the socket
	c.cancel()

	h.mu.Lock()
	c.removed = true
	delete(h.clients, c.id)
	if userID != "" {
		if set, ok := h.users[userID]; ok {
			set.remove(c)
			h.users[userID] = set
			if set.len() == 0 {
				delete(h.users, userID)
				h.bus.Unwant(protocol.ChannelUser(userID))
			}
		}
	}
	if c.indexed {
		h.bus.Unwant(protocol.ChannelClient(c.id))
	}
	for _, room := range c.rooms.list() {
		h.removeFromRoomLocked(c, room)
	}
	h.mu.Unlock()
	h.stats.closed.Add(1)

	// c.cancel above ran before these callbacks: a handshake still in
	// flight has seen its context end (the encryption pair relies on it).
	ev := ClientDisconnectedEvent{ClientID: c.id, UserID: userID, Authenticated: wasAuthenticated}
	if h.opts.ClientDisconnected != nil {
		h.callback("client disconnected", c.id, func() error {
			return h.opts.ClientDisconnected(h.ctxForCallback(), ev)
		})
	}
	for _, hook := range h.opts.DisconnectHooks {
		if hook != nil {
			h.callback("disconnect hook", c.id, func() error { return hook(h.ctxForCallback(), ev) })
		}
	}
}

// ctxForCallback is the context given to callbacks that run after a client
// has gone: it lives as long as the Helper.
func (h *Helper) ctxForCallback() context.Context { return h.ctx }

// callback runs f, recovering a panic; errors and panics are logged once.
func (h *Helper) callback(name, clientID string, f func() error) (err error) {
	if obs := h.opts.Observer; obs != nil {
		start := time.Now()
		defer func() { obs.ObserveCallback(name, time.Since(start)) }()
	}
	defer func() {
		if p := recover(); p != nil {
			h.stats.callbackPanics.Add(1)
			err = fmt.Errorf("server: %s callback panicked: %v", name, p)
			h.sampledAt(zap.ErrorLevel, sampleHandlerError, "callback panicked", zap.String("callback", name),
				zap.String("client_id", clientID), zap.Any("panic", p))
		}
	}()
	err = f()
	if err != nil {
		h.stats.callbackErrors.Add(1)
		// Failures a client can cause at will (bad keys, tampered frames)
		// are logged at debug level; the others are sampled, so that a
		// client sending a failing event in a loop cannot flood the log.
		if clientCaused[name] || isClientError(err) {
			if ce := h.log.Check(zap.DebugLevel, "callback failed"); ce != nil {
				ce.Write(zap.String("callback", name), zap.String("client_id", clientID), zap.Error(err))
			}
		} else {
			h.sampledAt(zap.WarnLevel, sampleHandlerError, "callback failed",
				zap.String("callback", name), zap.String("client_id", clientID), zap.Error(err))
		}
	}
	return err
}

// clientCaused names the callbacks whose errors are usually the client's
// doing.
var clientCaused = map[string]bool{"inbound transformer": true, "handshake": true, "authenticate": true}

func (h *Helper) logDebug(msg, clientID string, err error) {
	if ce := h.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("client_id", clientID), zap.Error(err))
	}
}

func (h *Helper) allClients() []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*client, 0, len(h.clients))
	for _, c := range h.clients {
		out = append(out, c)
	}
	return out
}

// sweepLoop closes authenticated clients that stopped sending heartbeats and
// queues protocol pings when SendPings is on.
func (h *Helper) sweepLoop() {
	hb := time.NewTicker(h.cfg.HeartbeatInterval)
	defer hb.Stop()
	samples := time.NewTicker(h.cfg.LogSampleInterval)
	defer samples.Stop()
	var idleC <-chan time.Time
	if h.polls != nil {
		it := time.NewTicker(idleSweepEvery(h.cfg.IdleTimeout))
		defer it.Stop()
		idleC = it.C
	}
	var pingC <-chan time.Time
	if *h.cfg.SendPings {
		pt := time.NewTicker(h.cfg.IdleTimeout / 2)
		defer pt.Stop()
		pingC = pt.C
	}
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-hb.C:
			h.sweepHeartbeats(time.Now())
		case <-samples.C:
			h.flushSamples(h.cfg.LogSampleInterval)
		case now := <-idleC:
			h.hangUpIdle(now.Add(-h.cfg.IdleTimeout).UnixNano())
		case <-pingC:
			for _, c := range h.allClients() {
				c.sendControl(framePing, nil)
			}
		}
	}
}

func (h *Helper) sweepHeartbeats(now time.Time) {
	limit := now.Add(-h.cfg.HeartbeatTimeout).UnixNano()
	for _, c := range h.allClients() {
		st, _ := c.getState()
		if st == protocol.StateAuthenticated && c.lastActivity.Load() < limit {
			h.stats.heartbeatTimeouts.Add(1)
			c.close(DisconnectHeartbeatTimeout, false)
		}
	}
}

// lifeErr is nil while the Helper is configured and not shut down. It
// never waits.
func (h *Helper) lifeErr() error {
	switch h.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return ErrClosed
	}
	return ErrNotConfigured
}
