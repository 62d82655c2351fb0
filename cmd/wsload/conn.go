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
)

// authTimeout bounds the wait for "connected" after authenticate was sent.
const authTimeout = 15 * time.Second

// client is one simulated WebSocket user.
type client struct {
	index int
	node  int
	id    string // from "connected"
	conn  *websocket.Conn
	wmu   sync.Mutex // gorilla allows one writer at a time
}

// write sends one text frame with a deadline.
func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// close sends a close frame and drops the socket without waiting for the
// server's answer; the server sees a normal close.
func (c *client) close() {
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "wsload done"),
		time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.conn.Close()
}

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

// frame builds the authenticate frame of client i on node.
func (a authTemplate) frame(i, node int) []byte {
	return []byte(`{"event":"authenticate","data":` + expand(a.tmpl, i, node) + `}`)
}

// inFrame is a frame from the server, decoded where speed does not matter.
type inFrame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// authError is a refusal by the server: an "error" frame or a close.
type authError struct{ msg string }

func (e *authError) Error() string { return "authentication refused: " + e.msg }

// dialer connects and authenticates clients.
type dialer struct {
	ws    *websocket.Dialer
	nodes []*url.URL
	auth  authTemplate
}

// connect opens client i on node i mod len(nodes) and waits for
// "connected".
func (d *dialer) connect(ctx context.Context, i int) (*client, error) {
	node := i % len(d.nodes)
	conn, resp, err := d.ws.DialContext(ctx, d.nodes[node].String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &client{index: i, node: node, conn: conn}
	if err := c.write(d.auth.frame(i, node)); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("send authenticate: %w", err)
	}
	deadline := time.Now().Add(authTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for {
		_ = conn.SetReadDeadline(deadline)
		_, b, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return nil, &authError{msg: fmt.Sprintf("closed %d %q", ce.Code, ce.Text)}
			}
			return nil, fmt.Errorf("wait for connected: %w", err)
		}
		var f inFrame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch f.Event {
		case "connected":
			var d struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(f.Data, &d)
			c.id = d.ID
			_ = conn.SetReadDeadline(time.Time{})
			return c, nil
		case "error":
			_ = conn.Close()
			return nil, &authError{msg: string(f.Data)}
		}
	}
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
func (d *dialer) connectAll(ctx context.Context, n, conc int, rate float64, st *connectStats, errs *errorLog) []*client {
	clients := make([]*client, n)
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

// closeAll closes every client (nil entries are skipped).
func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
}

// live returns the non-nil clients.
func live(clients []*client) []*client {
	out := make([]*client, 0, len(clients))
	for _, c := range clients {
		if c != nil {
			out = append(out, c)
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
