package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Client is a connection to a wscomponent (or Ignis) WebSocket server that
// survives the loss of its socket: see the package doc. Its methods are
// safe for concurrent use.
type Client struct {
	url    string
	opts   Options
	log    *zap.Logger
	dialer Dialer
	disp   *dispatcher
	pinned *ecdh.PublicKey // Options.ServerPublicKey, parsed; nil: not pinned

	ctx    context.Context // the Client's life; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but the handler goroutine

	nextID     atomic.Uint64
	refreshing atomic.Bool

	mu       sync.Mutex
	closing  bool              // Close was called: goFunc starts nothing
	conn     *conn             // nil between connections
	session  Connected         // of the last connection
	rooms    map[string]bool   // joined through Join: rejoined after a reconnect
	offsets  map[string]string // room → last offset queued for the handlers
	err      error             // why the Client stopped
	done     chan struct{}     // closed when the Client stopped
	stopOnce sync.Once
	closeMu  sync.Once
}

// Dial connects to url (ws:// or wss://), authenticates with
// Options.Credentials and returns once the server sent "connected". The
// first connection is not retried: a refusal or a network error is
// returned (a refusal as a *CloseError, e.g. 4003). ctx bounds this first
// connection only (with Options.ConnectTimeout); the Client then lives
// until Close or until it stops for good (Done).
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	pinned, err := parsePinned(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:     url,
		opts:    opts,
		log:     opts.Logger,
		dialer:  opts.Dialer,
		pinned:  pinned,
		rooms:   make(map[string]bool),
		offsets: make(map[string]string),
		done:    make(chan struct{}),
	}
	if c.dialer == nil {
		c.dialer = &websocket.Dialer{
			Proxy:            websocket.DefaultDialer.Proxy,
			HandshakeTimeout: opts.ConnectTimeout,
		}
	}
	c.disp = newDispatcher(c.log, opts.EventQueue)
	cn, _, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.install(cn)
	c.goFunc(func() { c.run(cn) })
	return c, nil
}

// goFunc runs each f on a goroutine that Close waits for. After Close it
// starts none of them and returns false.
func (c *Client) goFunc(fs ...func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	for _, f := range fs {
		c.wg.Go(f)
	}
	return true
}

// connect opens one connection and authenticates it; with
// Options.Encrypt, under a key pair of its own.
func (c *Client) connect(ctx context.Context) (*conn, Connected, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	var creds json.RawMessage
	if c.opts.Credentials != nil {
		v, err := c.opts.Credentials(ctx)
		if err != nil {
			return nil, Connected{}, fmt.Errorf("client: credentials: %w", err)
		}
		if v != nil {
			if creds, err = json.Marshal(v); err != nil {
				return nil, Connected{}, fmt.Errorf("client: encode credentials: %w", err)
			}
		}
	}
	var priv *ecdh.PrivateKey
	if c.opts.Encrypt {
		var err error
		if priv, err = ecdh.GenerateKey(); err != nil {
			return nil, Connected{}, fmt.Errorf("client: %w", err)
		}
		if creds, err = withPublicKey(creds, priv.PublicKeyBase64()); err != nil {
			return nil, Connected{}, err
		}
	}
	ws, resp, err := c.dialer.DialContext(ctx, c.url, c.opts.Header)
	if err != nil {
		if resp != nil {
			return nil, Connected{}, fmt.Errorf("client: dial %s: %w (HTTP %s)", c.url, err, resp.Status)
		}
		return nil, Connected{}, fmt.Errorf("client: dial %s: %w", c.url, err)
	}
	cn := newConn(c, ws)
	d, err := cn.handshake(ctx, creds, priv)
	if err != nil {
		_ = ws.Close()
		return nil, Connected{}, err
	}
	return cn, d, nil
}

// install makes cn the current connection and starts its goroutines.
func (c *Client) install(cn *conn) {
	c.mu.Lock()
	c.conn = cn
	c.session = *cn.session.Load()
	c.mu.Unlock()
	cn.start()
	c.log.Debug("connected", zap.String("client_id", c.session.ID), zap.String("user_id", c.session.UserID))
}

// run owns the connection's life: it waits for the current connection to
// end and reconnects, until Close or a close that stops the Client.
func (c *Client) run(cn *conn) {
	for {
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.shutdown(ErrClosed, websocket.CloseNormalClosure, "Client closed")
			return
		}
		<-cn.wdone
		cause := cn.err()
		c.mu.Lock()
		c.conn = nil
		session := c.session
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		retry := c.shouldRetry(cause)
		c.log.Info("connection lost", zap.String("client_id", session.ID), zap.Error(cause), zap.Bool("reconnecting", retry))
		c.notifyDisconnect(cause, retry)
		if !retry {
			c.stop(cause)
			return
		}
		next, err := c.reconnect()
		if next == nil {
			if c.ctx.Err() == nil {
				c.log.Warn("stopped reconnecting", zap.Error(err))
				c.notifyDisconnect(err, false)
				c.stop(err)
			}
			return
		}
		cn = next
	}
}

func (c *Client) notifyDisconnect(err error, retry bool) {
	if h := c.opts.OnDisconnect; h != nil {
		c.disp.notice("disconnect", func() { h(Disconnected{Err: err, Reconnecting: retry}) })
	}
}

func (c *Client) shouldRetry(cause error) bool {
	if !c.opts.Reconnect.enabled() {
		return false
	}
	if errors.Is(cause, ErrEventQueueFull) {
		return true
	}
	var ce *CloseError
	if errors.As(cause, &ce) {
		return c.opts.Reconnect.ShouldRetry(ce)
	}
	return true
}

// reconnect connects again with backoff and rejoins the rooms. It returns
// nil when the Client is closed or must stop (err says why).
func (c *Client) reconnect() (*conn, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if m := c.opts.Reconnect.MaxAttempts; m > 0 && attempt >= m {
			return nil, fmt.Errorf("%w (%d attempts; last: %w)", ErrReconnectGaveUp, attempt, lastErr)
		}
		t := time.NewTimer(c.opts.Reconnect.backoff(attempt))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		cn, _, err := c.connect(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				return nil, ErrClosed
			}
			lastErr = err
			var ce *CloseError
			if errors.As(err, &ce) && !c.opts.Reconnect.ShouldRetry(ce) {
				return nil, err
			}
			if errors.Is(err, ErrEncryptionHandshake) {
				// Never fall back to plaintext, never trust another key.
				return nil, err
			}
			c.log.Info("reconnect attempt failed", zap.Int("attempt", attempt+1), zap.Error(err))
			continue
		}
		c.install(cn)
		ack, err := c.rejoin(cn)
		if err != nil {
			// run sees the connection end and starts over.
			c.log.Info("rejoin failed", zap.Error(err))
			cn.drop(err, websocket.CloseNormalClosure, "Rejoin failed")
			return cn, nil
		}
		if h := c.opts.OnReconnect; h != nil {
			r := Reconnected{Connected: *cn.session.Load(), Attempts: attempt + 1, Rejoin: ack}
			for _, room := range ack.Rooms {
				if !ack.Recovered[room] {
					r.Unrecovered = append(r.Unrecovered, room)
				}
			}
			c.disp.notice("reconnect", func() { h(r) })
		}
		return cn, nil
	}
}

// rejoin joins the rooms joined through Join again, asking to recover
// those with a known offset. Refused rooms are forgotten.
func (c *Client) rejoin(cn *conn) (Ack, error) {
	c.mu.Lock()
	rooms := slices.Sorted(maps.Keys(c.rooms))
	since := make(map[string]string)
	for _, r := range rooms {
		if off, ok := c.offsets[r]; ok {
			since[r] = off
		}
	}
	c.mu.Unlock()
	all := Ack{Event: protocol.EventJoin, Recovered: map[string]bool{}}
	for chunk := range slices.Chunk(rooms, protocol.DefaultMaxRoomsPerRequest) {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
		ack, err := c.joinOn(ctx, cn, chunk, since)
		cancel()
		if err != nil {
			return Ack{}, err
		}
		all.Rooms = append(all.Rooms, ack.Rooms...)
		all.Refused = append(all.Refused, ack.Refused...)
		maps.Copy(all.Recovered, ack.Recovered)
	}
	if len(all.Refused) > 0 {
		c.mu.Lock()
		for _, r := range all.Refused {
			delete(c.rooms, r.Room)
		}
		c.mu.Unlock()
	}
	return all, nil
}

// stop ends the Client for good after an unrecoverable close; the handlers
// still get what was queued.
func (c *Client) stop(err error) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
		close(c.done)
		c.disp.finish()
	})
}

// Close closes the connection (1000 "Client closed"), stops reconnecting,
// and returns once every goroutine of the Client has returned: it waits
// for a running handler, unless a handler calls it (then the handler
// goroutine returns right after that handler). Handlers queued but not yet
// run are dropped. Requests waiting for an answer fail. Close is
// idempotent and returns nil.
func (c *Client) Close() error {
	c.closeMu.Do(func() {
		c.mu.Lock()
		c.closing = true
		if c.err == nil {
			c.err = ErrClosed
		}
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.stop(ErrClosed)
		done := c.disp.close()
		if !c.disp.inHandler() {
			<-done
		}
	})
	return nil
}

// Done is closed when the Client has stopped for good: after Close, or
// after a close that stops it (Err says which).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the Client stopped: nil while it runs, ErrClosed after Close,
// else the *CloseError (e.g. 4005 from the server's Disconnect) or the
// error wrapping ErrReconnectGaveUp. Call Close anyway to release it.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Connected returns the current (or, while reconnecting, the last)
// session: its client id changes with every connection.
func (c *Client) Connected() Connected {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Rooms returns the rooms joined through Join (and not left), which a
// reconnect rejoins; sorted. The own-id and default rooms the server joins
// by itself are not among them.
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.rooms))
}

// Offsets returns the last offset seen per history room (SPEC §9.5), e.g.
// to keep them across restarts of the app and pass them to JoinSince.
func (c *Client) Offsets() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.offsets)
}

// recordOffset remembers the offset of a history-room frame that was
// handed to the handlers (or had none to go to).
func (c *Client) recordOffset(f Frame) {
	if f.Room == "" || f.Offset == "" {
		return
	}
	c.mu.Lock()
	c.offsets[f.Room] = f.Offset
	c.mu.Unlock()
}

// current returns the connection to send on.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, ErrClosed
	}
	select {
	case <-c.done:
		if errors.Is(c.err, ErrClosed) {
			return nil, c.err
		}
		return nil, fmt.Errorf("%w: %w", ErrClosed, c.err)
	default:
	}
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

// outFrame is a frame the client writes.
type outFrame struct {
	Event string `json:"event"`
	Data  any    `json:"data,omitempty"`
	ID    string `json:"id,omitempty"`
}

// encode writes the frame as json.Marshal does; a frame whose data is a
// json.RawMessage is mostly written without it (appendRawFrame).
func encode(event string, data any, id string) ([]byte, error) {
	if raw, ok := data.(json.RawMessage); ok {
		if b, ok := appendRawFrame(nil, event, raw, id); ok {
			return b, nil
		}
	}
	b, err := json.Marshal(outFrame{Event: event, Data: data, ID: id})
	if err != nil {
		return nil, fmt.Errorf("client: encode %q: %w", event, err)
	}
	return b, nil
}

// Send sends {"event","data"} without an id (sealed when Options.Encrypt
// is set): nothing answers it. It returns once the frame is queued for the
// writer; ErrNotConnected while reconnecting, ErrSendQueueFull when the
// writer is SendQueue frames behind. nil data is left out.
func (c *Client) Send(event string, data any) error {
	cn, err := c.current()
	if err != nil {
		return err
	}
	b, err := cn.encode(event, data, "")
	if err != nil {
		return err
	}
	return cn.enqueue(b)
}

// Request sends {"event","data","id"} and returns the frame that answers
// it (the server's Helper.Reply, which carries the same id). An "error"
// answer is returned as a *ServerError (a server.ClientError's text, or
// "Internal error"). It waits at most Options.RequestTimeout (ErrTimeout)
// and until ctx ends; a connection lost meanwhile gives ErrConnectionLost
// (the server may have handled the request).
func (c *Client) Request(ctx context.Context, event string, data any) (Frame, error) {
	cn, err := c.current()
	if err != nil {
		return Frame{}, err
	}
	return c.roundTrip(ctx, cn, event, data)
}

func (c *Client) roundTrip(ctx context.Context, cn *conn, event string, data any) (Frame, error) {
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	b, err := cn.encode(event, data, id)
	if err != nil {
		return Frame{}, err
	}
	ch := cn.register(id)
	defer cn.unregister(id)
	if err := cn.enqueue(b); err != nil {
		return Frame{}, err
	}
	t := time.NewTimer(c.opts.RequestTimeout)
	defer t.Stop()
	var f Frame
	select {
	case f = <-ch:
	case <-cn.done:
		select {
		case f = <-ch: // answered just before the end
		default:
			return Frame{}, fmt.Errorf("%w: %s: %w", ErrConnectionLost, event, cn.err())
		}
	case <-t.C:
		return Frame{}, fmt.Errorf("%w: no answer to %s within %v", ErrTimeout, event, c.opts.RequestTimeout)
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
	if f.Event == protocol.EventError {
		var e protocol.ErrorData
		_ = f.Decode(&e)
		return f, &ServerError{Message: e.Message}
	}
	return f, nil
}

// joinData is the data of a join or leave request.
type joinData struct {
	Rooms []string          `json:"rooms"`
	Since map[string]string `json:"since,omitempty"`
}

// Join joins rooms and returns the server's ack once they are live: the
// rooms joined and those refused with why (refused rooms are not an
// error). Joined rooms are rejoined after every reconnect, with recovery
// for history rooms.
func (c *Client) Join(ctx context.Context, rooms ...string) (Ack, error) {
	return c.JoinSince(ctx, nil, rooms...)
}

// JoinSince is Join asking the server to replay what history rooms got
// after the given offsets (room → offset, e.g. from Offsets saved by an
// earlier run); Ack.Recovered says per room whether it could. The rooms
// of since are joined besides rooms.
func (c *Client) JoinSince(ctx context.Context, since map[string]string, rooms ...string) (Ack, error) {
	cn, err := c.current()
	if err != nil {
		return Ack{}, err
	}
	for r := range since {
		if !slices.Contains(rooms, r) {
			rooms = append(rooms, r)
		}
	}
	return c.joinOn(ctx, cn, rooms, since)
}

func (c *Client) joinOn(ctx context.Context, cn *conn, rooms []string, since map[string]string) (Ack, error) {
	d := joinData{Rooms: rooms}
	for _, r := range rooms {
		if off, ok := since[r]; ok {
			if d.Since == nil {
				d.Since = make(map[string]string)
			}
			d.Since[r] = off
		}
	}
	ack, err := c.ackRequest(ctx, cn, protocol.EventJoin, d)
	if err != nil {
		return ack, err
	}
	c.mu.Lock()
	for _, r := range ack.Rooms {
		c.rooms[r] = true
	}
	c.mu.Unlock()
	return ack, nil
}

// Leave leaves rooms; they are forgotten for rejoins at once, whatever the
// ack says.
func (c *Client) Leave(ctx context.Context, rooms ...string) (Ack, error) {
	cn, err := c.current()
	if err != nil {
		return Ack{}, err
	}
	c.mu.Lock()
	for _, r := range rooms {
		delete(c.rooms, r)
		delete(c.offsets, r)
	}
	c.mu.Unlock()
	return c.ackRequest(ctx, cn, protocol.EventLeave, joinData{Rooms: rooms})
}

func (c *Client) ackRequest(ctx context.Context, cn *conn, event string, data any) (Ack, error) {
	f, err := c.roundTrip(ctx, cn, event, data)
	if err != nil {
		return Ack{}, err
	}
	var ack Ack
	if f.Event != protocol.EventAck || f.Decode(&ack) != nil {
		return Ack{}, fmt.Errorf("client: %s answered with %s %s", event, f.Event, f.Data)
	}
	return ack, nil
}

// Presence asks who is in a presence room (SPEC §9.4); the client must be
// a member. A refusal (not a member, or presence is off for the room) is
// returned as a Refused error. Against a server without presence at all
// the request goes to its message handler, and usually times out.
func (c *Client) Presence(ctx context.Context, room string) (Presence, error) {
	cn, err := c.current()
	if err != nil {
		return Presence{}, err
	}
	f, err := c.roundTrip(ctx, cn, protocol.EventPresence, map[string]string{"room": room})
	if err != nil {
		return Presence{}, err
	}
	var d struct {
		Presence
		Refused []Refused `json:"refused"`
	}
	if f.Event != protocol.EventAck || f.Decode(&d) != nil {
		return Presence{}, fmt.Errorf("client: presence answered with %s %s", f.Event, f.Data)
	}
	if len(d.Refused) > 0 {
		return Presence{}, d.Refused[0]
	}
	return d.Presence, nil
}

// Refresh re-authenticates the session (SPEC §9.2): it calls
// Options.Credentials, sends "refresh" and returns the new expiry from
// "refreshed" (zero: the session no longer expires). A refusal is a
// *ServerError "Refresh failed"; the old expiry then stays.
func (c *Client) Refresh(ctx context.Context) (time.Time, error) {
	cn, err := c.current()
	if err != nil {
		return time.Time{}, err
	}
	var creds any
	if c.opts.Credentials != nil {
		if creds, err = c.opts.Credentials(ctx); err != nil {
			return time.Time{}, fmt.Errorf("client: credentials: %w", err)
		}
	}
	f, err := c.roundTrip(ctx, cn, protocol.EventRefresh, creds)
	if err != nil {
		return time.Time{}, err
	}
	var d protocol.ExpiryData
	if f.Event != protocol.EventRefreshed || f.Decode(&d) != nil {
		return time.Time{}, fmt.Errorf("client: refresh answered with %s %s", f.Event, f.Data)
	}
	if d.ExpiresAt == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, d.ExpiresAt)
	if err != nil {
		return time.Time{}, fmt.Errorf("client: refreshed expiresAt %q: %w", d.ExpiresAt, err)
	}
	return at, nil
}

// autoRefresh refreshes on a goroutine of its own (Credentials may be
// slow, and the reader must go on reading), one at a time.
func (c *Client) autoRefresh() {
	if !c.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.goFunc(func() {
		defer c.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.ConnectTimeout+c.opts.RequestTimeout)
		defer cancel()
		at, err := c.Refresh(ctx)
		if err != nil {
			c.log.Warn("session refresh failed", zap.Error(err))
		}
		if h := c.opts.OnRefresh; h != nil {
			c.disp.notice("refresh", func() { h(Refreshed{ExpiresAt: at, Err: err}) })
		}
	})
}
