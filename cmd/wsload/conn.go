package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ignis-go/wscomponent/client"
)

// connectTimeout bounds one connection: dial and upgrade (the dialer's
// 10 s handshake timeout) and authenticate until "connected".
const connectTimeout = 25 * time.Second

// sendQueue bounds the frames a user has waiting for its writer: a
// scenario sends one at a time (the default queue, 256, costs 6 KiB per
// client).
const sendQueue = 4

// closeAbnormal is the code the client gives a connection lost without a
// close frame.
const closeAbnormal = 1006

// closeConcurrency is how many clients closeAll closes at once: each Close
// waits for the server's answering close frame.
const closeConcurrency = 64

// user is one simulated WebSocket user: a client.Client on one node.
type user struct {
	index int
	node  int
	// c is set once Dial returned; the frame callback may run before
	// (frames right after "connected"), hence the atomic.
	c atomic.Pointer[client.Client]
}

// conn returns the user's client.
func (u *user) conn() *client.Client { return u.c.Load() }

// authTemplate expands the authenticate data of client i.
type authTemplate struct {
	tmpl string // JSON with {i} and {node} placeholders
}

// newAuthTemplate builds the template from -auth-data, or from -token as
// {"token":"<token>"}.
func newAuthTemplate(token, authData string) (authTemplate, error) {
	if authData != "" {
		probe := expand(authData, 0, 0)
		if !json.Valid([]byte(probe)) {
			return authTemplate{}, fmt.Errorf("-auth-data %q is not valid JSON once expanded (%s)", authData, probe)
		}
		return authTemplate{tmpl: authData}, nil
	}
	b, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		return authTemplate{}, err
	}
	return authTemplate{tmpl: string(b)}, nil
}

func expand(tmpl string, i, node int) string {
	return strings.NewReplacer("{i}", strconv.Itoa(i), "{node}", strconv.Itoa(node)).Replace(tmpl)
}

// data is the authenticate data of client i on node.
func (a authTemplate) data(i, node int) json.RawMessage {
	return json.RawMessage(expand(a.tmpl, i, node))
}

// authError is a refusal by the server: a close frame before "connected"
// (after an "error" frame, from this module's server and Ignis).
type authError struct{ err *client.CloseError }

func (e *authError) Error() string {
	msg := fmt.Sprintf("closed %d %q", e.err.Code, e.err.Reason)
	if e.err.Message != "" {
		msg += fmt.Sprintf(" after error %q", e.err.Message)
	}
	return "authentication refused: " + msg
}

func (e *authError) Unwrap() error { return e.err }

// dialer connects and authenticates users through the client package, with
// what every scenario shares: no reconnect, no automatic refresh.
type dialer struct {
	ws    *websocket.Dialer
	nodes []*url.URL
	auth  authTemplate
	// heartbeat is the period of the users' "heartbeat" frames; 0: none.
	heartbeat time.Duration
	// onFrame receives every application frame of every user, on that
	// user's reader goroutine (client.Options.OnFrame): it must not block.
	// nil: frames are ignored.
	onFrame func(u *user, f client.Frame)
	// onLost is told when a user's connection ends other than by closeAll.
	onLost func(u *user, err error)
}

// connect opens client i on node i mod len(nodes) and returns once it is
// authenticated.
func (d *dialer) connect(ctx context.Context, i int) (*user, error) {
	u := &user{index: i, node: i % len(d.nodes)}
	creds := d.auth.data(i, u.node)
	hb := d.heartbeat
	if hb <= 0 {
		hb = client.Off
	}
	opts := client.Options{
		Credentials:       func(context.Context) (any, error) { return creds, nil },
		Dialer:            d.ws,
		HeartbeatInterval: hb,
		// A server need not send anything to an idle client: a quiet
		// connection is not a dead one here.
		ReadTimeout:    client.Off,
		ConnectTimeout: connectTimeout,
		SendQueue:      sendQueue,
		Reconnect:      client.Reconnect{MaxAttempts: client.Off},
		AutoRefresh:    client.Bool(false),
	}
	if d.onFrame != nil {
		opts.OnFrame = func(f client.Frame) { d.onFrame(u, f) }
	}
	if d.onLost != nil {
		opts.OnDisconnect = func(e client.Disconnected) { d.onLost(u, e.Err) }
	}
	c, err := client.Dial(ctx, d.nodes[u.node].String(), opts)
	if err != nil {
		// A close frame before "connected" is a refusal; 1006 is a
		// connection lost without one.
		var ce *client.CloseError
		if errors.As(err, &ce) && ce.Code != closeAbnormal {
			return nil, &authError{err: ce}
		}
		return nil, err
	}
	u.c.Store(c)
	return u, nil
}

// connectStats counts the outcome of a connect phase.
type connectStats struct {
	started, connected, failed atomic.Int64
	latency                    histogram // dial + upgrade + authenticate
}

// connectAll opens n clients with at most conc attempts in flight and, when
// rate > 0, at most rate new attempts per second. It returns the clients
// that connected, indexed by client number (nil for failures), and the first
// error seen. It stops early when ctx ends.
func (d *dialer) connectAll(ctx context.Context, n, conc int, rate float64, st *connectStats, errs *errorLog) []*user {
	clients := make([]*user, n)
	next := make(chan int)
	go func() {
		defer close(next)
		start := time.Now()
		for i := range n {
			if rate > 0 {
				due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case next <- i:
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for i := range next {
				st.started.Add(1)
				t0 := time.Now()
				c, err := d.connect(ctx, i)
				if err != nil {
					st.failed.Add(1)
					if ctx.Err() == nil {
						errs.add(fmt.Errorf("client %d: %w", i, err))
					}
					continue
				}
				st.latency.record(time.Since(t0))
				st.connected.Add(1)
				clients[i] = c
			}
		})
	}
	wg.Wait()
	return clients
}

// closeAll closes every client (nil entries are skipped), a few at a time:
// each Close sends 1000 and waits for the server's answer (at most a
// second), so that the server sees normal closes.
func closeAll(clients []*user) {
	next := make(chan *user)
	var wg sync.WaitGroup
	for range min(closeConcurrency, len(clients)) {
		wg.Go(func() {
			for u := range next {
				_ = u.conn().Close()
			}
		})
	}
	for _, u := range clients {
		if u != nil {
			next <- u
		}
	}
	close(next)
	wg.Wait()
}

// live returns the non-nil clients.
func live(clients []*user) []*user {
	out := make([]*user, 0, len(clients))
	for _, u := range clients {
		if u != nil {
			out = append(out, u)
		}
	}
	return out
}

// errorLog counts errors and keeps the first few for the report.
type errorLog struct {
	mu    sync.Mutex
	n     atomic.Int64
	first []string
}

const keepErrors = 5

func (l *errorLog) add(err error) {
	l.n.Add(1)
	l.mu.Lock()
	if len(l.first) < keepErrors {
		l.first = append(l.first, err.Error())
	}
	l.mu.Unlock()
}

func (l *errorLog) count() int64 { return l.n.Load() }

func (l *errorLog) samples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.first...)
}
