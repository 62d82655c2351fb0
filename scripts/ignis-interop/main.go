// Command ignis-interop checks that this component and the real Ignis
// WebSocketServerHelper (running under Bun, see ignis-server.ts) serve one
// user base on one Redis, and prints the frames both servers send for the
// same situations side by side. See README.md in this directory.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/redisconn"
	"github.com/ignis-go/wscomponent/server"
)

var (
	ignisWS      = flag.String("ignis", "ws://127.0.0.1:18081/ws", "Ignis WebSocket URL")
	ignisHTTP    = flag.String("ignis-http", "http://127.0.0.1:18081", "Ignis control endpoint base URL")
	redisURL     = flag.String("redis", "redis://127.0.0.1:6379", "Redis URL shared by both servers")
	routing      = flag.String("routing", "interest", "our Config.RedisRouting: interest or pattern")
	authTimeout  = flag.Duration("auth-timeout", time.Second, "AuthTimeout of our server (give Ignis the same AUTH_TIMEOUT_MS)")
	hbInterval   = flag.Duration("hb-interval", time.Second, "HeartbeatInterval of our server (Ignis: HEARTBEAT_INTERVAL_MS)")
	hbTimeout    = flag.Duration("hb-timeout", 2500*time.Millisecond, "HeartbeatTimeout of our server (Ignis: HEARTBEAT_TIMEOUT_MS)")
	settle       = flag.Duration("settle", 400*time.Millisecond, "how long to collect frames after each trigger")
	probeShut    = flag.Bool("probe-shutdown", false, "only: connect one authenticated client to Ignis, print PROBE_READY, and report how it is closed (the runner then stops Bun)")
	skipTimeouts = flag.Bool("skip-timeouts", false, "skip the auth/heartbeat timeout comparisons")
	ignisLog     = flag.String("ignis-log", "", "the Ignis server's log file (run.sh passes it); if set, what Ignis logs during the fleet-wide disconnect checks must hold no error and no mention of ws:control")
)

// ---------------------------------------------------------------- results

var (
	failures int
	passes   int
)

func pass(name string, format string, a ...any) {
	passes++
	fmt.Printf("PASS  %-58s %s\n", name, fmt.Sprintf(format, a...))
}

var observations int

// observe records an Ignis behaviour that differs from SPEC.md; it does not
// count as a failure of this component.
func observe(name string, format string, a ...any) {
	observations++
	fmt.Printf("IGNIS %-58s %s\n", name, fmt.Sprintf(format, a...))
}

func fail(name string, format string, a ...any) {
	failures++
	fmt.Printf("FAIL  %-58s %s\n", name, fmt.Sprintf(format, a...))
}

// ---------------------------------------------------------------- client

type frame struct {
	at   time.Time
	typ  int
	data string
}

type client struct {
	name string
	conn *websocket.Conn
	wmu  sync.Mutex

	mu       sync.Mutex
	frames   []frame
	closed   bool
	code     int
	reason   string
	closedAt time.Time
	openedAt time.Time
	pings    int
	done     chan struct{}
	id       string
	stopHB   chan struct{}
}

func dial(name, url string) *client {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial %s %s: %v\n", name, url, err)
		os.Exit(2)
	}
	c := &client{name: name, conn: conn, done: make(chan struct{}), openedAt: time.Now()}
	conn.SetPingHandler(func(appData string) error {
		c.mu.Lock()
		c.pings++
		c.mu.Unlock()
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return conn.WriteControl(websocket.PongMessage, []byte(appData), time.Now().Add(time.Second))
	})
	go c.read()
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		typ, b, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closed = true
			c.closedAt = time.Now()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.code, c.reason = ce.Code, ce.Text
			} else {
				c.code, c.reason = -1, err.Error()
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.frames = append(c.frames, frame{time.Now(), typ, string(b)})
		c.mu.Unlock()
	}
}

func (c *client) sendRaw(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(s))
}

func (c *client) sendBinary(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.BinaryMessage, []byte(s))
}

func (c *client) take() []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

// waitEvent waits for a frame with the given event and returns its raw text.
func (c *client) waitEvent(event string, d time.Duration) (string, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, f := range c.frames {
			if eventOf(f.data) == event {
				c.frames = append(c.frames[:i:i], c.frames[i+1:]...)
				c.mu.Unlock()
				return f.data, true
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return "", false
}

func (c *client) waitClosed(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (c *client) closeInfo() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return "open"
	}
	return fmt.Sprintf("close %d %q after %s", c.code, c.reason, c.closedAt.Sub(c.openedAt).Round(100*time.Millisecond))
}

func (c *client) heartbeat(every time.Duration) {
	c.stopHB = make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.sendRaw(`{"event":"heartbeat"}`)
			case <-c.stopHB:
				return
			case <-c.done:
				return
			}
		}
	}()
}

func (c *client) close() {
	if c.stopHB != nil {
		select {
		case <-c.stopHB:
		default:
			close(c.stopHB)
		}
	}
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	_ = c.conn.Close()
}

func eventOf(raw string) string {
	var m struct {
		Event any `json:"event"`
	}
	if json.Unmarshal([]byte(raw), &m) != nil {
		return ""
	}
	s, _ := m.Event.(string)
	return s
}

// authenticate sends authenticate and returns the raw connected frame.
func (c *client) authenticate(user string) string {
	c.sendRaw(fmt.Sprintf(`{"event":"authenticate","data":{"token":"user:%s"}}`, user))
	raw, ok := c.waitEvent("connected", 3*time.Second)
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: no connected frame (%s)\n", c.name, c.closeInfo())
		os.Exit(2)
	}
	var m struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal([]byte(raw), &m)
	c.id = m.Data.ID
	return raw
}

// ---------------------------------------------------------------- Ignis control

func ignisPost(path string, body any) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(*ignisHTTP+path, "application/json", bytes.NewReader(b))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ignis %s: %v\n", path, err)
		os.Exit(2)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		fmt.Fprintf(os.Stderr, "ignis %s: status %d\n", path, resp.StatusCode)
		os.Exit(2)
	}
}

type ignisClient struct {
	ID     string   `json:"id"`
	UserID string   `json:"userId"`
	State  string   `json:"state"`
	Rooms  []string `json:"rooms"`
}

func ignisClients() []ignisClient {
	resp, err := http.Get(*ignisHTTP + "/clients")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []ignisClient
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// ---------------------------------------------------------------- delivery checks

type want map[*client]int

var seq int

// deliver runs trigger with a fresh event name and checks how many frames of
// that event each client in w received within settle.
func deliver(name string, w want, all []*client, trigger func(event string) error) {
	deliverX(name, w, all, nil, nil, trigger)
}

// frameCheck inspects one frame of the checked event (its raw text).
type frameCheck func(raw string) error

// deliverX is deliver where unexpected frames at the clients in ignisSide are
// reported as Ignis observations (with the frame), not as failures, and
// where every frame of the event a client in checks receives must pass its
// check.
func deliverX(name string, w want, all []*client, ignisSide map[*client]bool, checks map[*client]frameCheck, trigger func(event string) error) {
	seq++
	event := fmt.Sprintf("chk.%d", seq)
	for _, c := range all {
		c.take()
	}
	if err := trigger(event); err != nil {
		fail(name, "trigger error: %v", err)
		return
	}
	time.Sleep(*settle)
	var bad, got, ign []string
	for _, c := range all {
		n := 0
		var raw string
		for _, f := range c.take() {
			if eventOf(f.data) == event {
				n++
				raw = f.data
				if chk := checks[c]; chk != nil {
					if err := chk(f.data); err != nil {
						bad = append(bad, fmt.Sprintf("%s frame %s: %v", c.name, f.data, err))
					}
				}
			}
		}
		if ignisSide[c] && n != w[c] {
			ign = append(ign, fmt.Sprintf("%s got %d want %d (frame %s)", c.name, n, w[c], raw))
			continue
		}
		if n > 0 {
			got = append(got, fmt.Sprintf("%s×%d", c.name, n))
		}
		if n != w[c] {
			bad = append(bad, fmt.Sprintf("%s got %d want %d", c.name, n, w[c]))
		}
	}
	if len(ign) > 0 {
		observe(name, "%s", strings.Join(ign, "; "))
	}
	if len(bad) > 0 {
		fail(name, "%s", strings.Join(bad, "; "))
		return
	}
	if len(got) == 0 {
		got = []string{"nobody (as expected)"}
	}
	pass(name, "%s", strings.Join(got, ", "))
}

// ---------------------------------------------------------------- Redis envelope capture

type capture struct {
	mu   sync.Mutex
	msgs []string
}

func (cp *capture) start(ctx context.Context, rdb redis.UniversalClient) func() {
	ps := rdb.PSubscribe(ctx, "ws:*")
	if _, err := ps.Receive(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "psubscribe: %v\n", err)
		os.Exit(2)
	}
	ch := ps.Channel()
	go func() {
		for m := range ch {
			cp.mu.Lock()
			cp.msgs = append(cp.msgs, m.Channel+"  "+m.Payload)
			cp.mu.Unlock()
		}
	}()
	return func() { _ = ps.Close() }
}

func (cp *capture) take() []string {
	time.Sleep(150 * time.Millisecond)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	m := cp.msgs
	cp.msgs = nil
	return m
}

// ---------------------------------------------------------------- main

func main() {
	flag.Parse()
	ctx := context.Background()
	if *probeShut {
		c := dial("probe", *ignisWS)
		c.authenticate("probe")
		c.heartbeat(500 * time.Millisecond)
		fmt.Println("PROBE_READY")
		c.waitClosed(20 * time.Second)
		fmt.Printf("ignis shutdown (SIGTERM -> helper.shutdown()) -> authenticated client: %s; frames %v\n", c.closeInfo(), frameTexts(c.take()))
		return
	}

	rdb, err := redisconn.FromURL(*redisURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer rdb.Close()

	h, err := server.New(server.Options{
		Config: server.Config{
			Identifier:        "GO_INTEROP",
			AuthTimeout:       *authTimeout,
			HeartbeatInterval: *hbInterval,
			HeartbeatTimeout:  *hbTimeout,
			RedisRouting:      *routing,
			PresenceRooms:     presenceRoom,
			PresenceEvents:    true,
			HistoryFor:        historyFor,
		},
		Redis: rdb,
		Authenticate: func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
			var d struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(req.Data, &d)
			if u, ok := strings.CutPrefix(d.Token, "user:"); ok && u != "" {
				return &server.AuthResult{UserID: u}, nil
			}
			return nil, nil
		},
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			return req.Rooms, nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := h.Configure(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	ourWS := "ws://" + ln.Addr().String() + "/ws"
	fmt.Printf("== routing=%s  ours=%s (serverId %s)  ignis=%s  redis=%s\n\n", *routing, ourWS, h.ServerID(), *ignisWS, *redisURL)

	em, err := emitter.New(emitter.Options{Redis: rdb, HistoryFor: historyFor})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	var cp capture
	stopCap := cp.start(ctx, rdb)

	// --------------------------------------------------------- mixed fleet
	A := dial("A(ignis,ua)", *ignisWS)
	B := dial("B(ours,ub)", ourWS)
	A2 := dial("A2(ours,ua)", ourWS)
	UI := dial("U(ignis,unauth)", *ignisWS)
	UO := dial("U(ours,unauth)", ourWS)
	connA := A.authenticate("ua")
	connB := B.authenticate("ub")
	A2.authenticate("ua")
	for _, c := range []*client{A, B, A2} {
		c.heartbeat(*hbInterval / 2)
	}
	// unauthenticated clients must outlive the test; they cannot send heartbeats
	// that keep the auth timer away, so they are re-dialled below where needed.
	A.sendRaw(`{"event":"join","data":{"rooms":["mixed"]}}`)
	B.sendRaw(`{"event":"join","data":{"rooms":["mixed"]}}`)
	time.Sleep(300 * time.Millisecond)
	joinReplyA, joinReplyB := A.take(), B.take()
	fmt.Printf("A id %s, B id %s, A2 id %s\n", A.id, B.id, A2.id)
	fmt.Printf("frames after join: ignis=%v ours=%v\n\n", frameTexts(joinReplyA), frameTexts(joinReplyB))
	cp.take()

	all := []*client{A, B, A2, UI, UO}
	payload := map[string]any{"n": 1, "s": "x"}

	fmt.Println("-- our side publishes")
	deliver("ours PublishToRoom(mixed)", want{A: 1, B: 1}, all, func(ev string) error { return h.PublishToRoom(ctx, "mixed", ev, payload) })
	deliver("ours PublishToRoom(mixed, exclude A)", want{B: 1}, all, func(ev string) error { return h.PublishToRoom(ctx, "mixed", ev, payload, A.id) })
	deliver("ours PublishToRoom(mixed, exclude B)", want{A: 1}, all, func(ev string) error { return h.PublishToRoom(ctx, "mixed", ev, payload, B.id) })
	deliver("ours PublishToUser(ua)", want{A: 1, A2: 1}, all, func(ev string) error { return h.PublishToUser(ctx, "ua", ev, payload) })
	deliver("ours PublishToUser(ub)", want{B: 1}, all, func(ev string) error { return h.PublishToUser(ctx, "ub", ev, payload) })
	deliver("ours PublishToClient(A)", want{A: 1}, all, func(ev string) error { return h.PublishToClient(ctx, A.id, ev, payload) })
	deliver("ours PublishBroadcast", want{A: 1, B: 1, A2: 1}, all, func(ev string) error { return h.PublishBroadcast(ctx, ev, payload) })
	deliver("ours PublishBroadcast(exclude A)", want{B: 1, A2: 1}, all, func(ev string) error { return h.PublishBroadcast(ctx, ev, payload, A.id) })
	deliver("ours Send(A id) [unknown locally -> room msg]", want{A: 1}, all, func(ev string) error { return h.Send(ctx, A.id, ev, payload) })
	deliver("ours Send(B id) [local client]", want{B: 1}, all, func(ev string) error { return h.Send(ctx, B.id, ev, payload) })
	deliver("ours Send(mixed) [local room]", want{A: 1, B: 1}, all, func(ev string) error { return h.Send(ctx, "mixed", ev, payload) })
	deliver("ours Send(\"\") [broadcast]", want{A: 1, B: 1, A2: 1}, all, func(ev string) error { return h.Send(ctx, "", ev, payload) })
	deliver("ours PublishToRoom(ws-default)", want{A: 1, B: 1, A2: 1}, all, func(ev string) error { return h.PublishToRoom(ctx, "ws-default", ev, payload) })

	fmt.Println("\n-- Ignis side publishes (helper.send)")
	deliver("ignis send(mixed)", want{A: 1, B: 1}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"destination": "mixed", "topic": ev, "data": payload})
		return nil
	})
	deliver("ignis send(B id) [unknown on Ignis -> ws:room:<B>]", want{B: 1}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"destination": B.id, "topic": ev, "data": payload})
		return nil
	})
	deliver("ignis send(A id) [local client -> ws:client:<A>]", want{A: 1}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"destination": A.id, "topic": ev, "data": payload})
		return nil
	})
	deliver("ignis send() [broadcast]", want{A: 1, B: 1, A2: 1}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"topic": ev, "data": payload})
		return nil
	})
	deliver("ignis send(ws-default) [local room]", want{A: 1, B: 1, A2: 1}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"destination": "ws-default", "topic": ev, "data": payload})
		return nil
	})
	deliver("ignis send(ub) [user id: Ignis treats as room]", want{}, all, func(ev string) error {
		ignisPost("/send", map[string]any{"destination": "ub", "topic": ev, "data": payload})
		return nil
	})

	fmt.Println("\n-- emitters (Ignis WebSocketEmitter / our helpers/emitter)")
	type emitCase struct {
		name  string
		kind  string
		targ  string
		excl  []string
		w     want
		goEmt func(ev string) error
	}
	cases := []emitCase{
		{"toRoom(mixed)", "room", "mixed", nil, want{A: 1, B: 1}, func(ev string) error { return em.ToRoom(ctx, "mixed", ev, payload) }},
		{"toRoom(mixed, exclude B)", "room", "mixed", []string{B.id}, want{A: 1}, func(ev string) error { return em.ToRoom(ctx, "mixed", ev, payload, B.id) }},
		{"toUser(ua)", "user", "ua", nil, want{A: 1, A2: 1}, func(ev string) error { return em.ToUser(ctx, "ua", ev, payload) }},
		{"toUser(ub)", "user", "ub", nil, want{B: 1}, func(ev string) error { return em.ToUser(ctx, "ub", ev, payload) }},
		{"toClient(A)", "client", A.id, nil, want{A: 1}, func(ev string) error { return em.ToClient(ctx, A.id, ev, payload) }},
		{"toClient(B)", "client", B.id, nil, want{B: 1}, func(ev string) error { return em.ToClient(ctx, B.id, ev, payload) }},
		{"broadcast", "broadcast", "", nil, want{A: 1, B: 1, A2: 1}, func(ev string) error { return em.Broadcast(ctx, ev, payload) }},
	}
	for _, c := range cases {
		c := c
		deliver("ignis emitter "+c.name, c.w, all, func(ev string) error {
			body := map[string]any{"kind": c.kind, "target": c.targ, "event": ev, "data": payload}
			if c.excl != nil {
				body["exclude"] = c.excl
			}
			ignisPost("/emit", body)
			return nil
		})
		deliver("go emitter "+c.name, c.w, all, c.goEmt)
	}

	fmt.Println("\n-- unauthenticated clients and application messages (SPEC §4b)")
	// Each check dials a fresh unauthenticated client on each server (the auth
	// timeout is short) and learns the Ignis one's id from /clients.
	unauthCheck := func(name string, trig func(id, ev string) error) {
		seen := map[string]bool{}
		for _, ic := range ignisClients() {
			seen[ic.ID] = true
		}
		ui := dial("U2(ignis,unauth)", *ignisWS)
		uo := dial("U2(ours,unauth)", ourWS)
		defer ui.close()
		defer uo.close()
		time.Sleep(100 * time.Millisecond)
		id := ""
		for _, ic := range ignisClients() {
			if !seen[ic.ID] && ic.State == "unauthorized" {
				id = ic.ID
			}
		}
		if id == "" {
			fail(name, "could not find the unauthenticated Ignis client's id")
			return
		}
		deliverX(name, want{}, []*client{A, B, A2, ui, uo}, map[*client]bool{ui: true}, nil, func(ev string) error { return trig(id, ev) })
	}
	unauthCheck("ours Send(<unauth Ignis client id>)", func(id, ev string) error { return h.Send(ctx, id, ev, payload) })
	unauthCheck("go emitter toRoom(<unauth Ignis client id>)", func(id, ev string) error { return em.ToRoom(ctx, id, ev, payload) })
	unauthCheck("go emitter toClient(<unauth Ignis client id>)", func(id, ev string) error { return em.ToClient(ctx, id, ev, payload) })
	unauthCheck("ignis send(<unauth Ignis client id>) [local client]", func(id, ev string) error {
		ignisPost("/send", map[string]any{"destination": id, "topic": ev, "data": payload})
		return nil
	})
	unauthCheck("ignis emitter toRoom(<unauth Ignis client id>)", func(id, ev string) error {
		ignisPost("/emit", map[string]any{"kind": "room", "target": id, "event": ev, "data": payload})
		return nil
	})
	// and the same for an unauthenticated client on our server
	unauthOurs := func(name string, trig func(id, ev string) error) {
		seen := map[string]bool{}
		for _, ci := range h.Clients() {
			seen[ci.ID] = true
		}
		uo := dial("U2(ours,unauth)", ourWS)
		defer uo.close()
		time.Sleep(100 * time.Millisecond)
		id := ""
		for _, ci := range h.Clients() {
			if !seen[ci.ID] {
				id = ci.ID
			}
		}
		if id == "" {
			fail(name, "could not find our unauthenticated client's id")
			return
		}
		deliver(name, want{}, []*client{A, B, A2, uo}, func(ev string) error { return trig(id, ev) })
	}
	unauthOurs("ignis send(<unauth OUR client id>)", func(id, ev string) error {
		ignisPost("/send", map[string]any{"destination": id, "topic": ev, "data": payload})
		return nil
	})
	unauthOurs("ours Send(<unauth OUR client id>) [local client]", func(id, ev string) error { return h.Send(ctx, id, ev, payload) })
	unauthOurs("go emitter toClient(<unauth OUR client id>)", func(id, ev string) error { return em.ToClient(ctx, id, ev, payload) })
	// the unauthenticated clients' frames (expected: nothing but a close on auth timeout)
	fmt.Printf("frames seen by unauthenticated clients: ignis=%v ours=%v\n", frameTexts(UI.take()), frameTexts(UO.take()))

	disconnectChecks(ctx, h, em, &cp, ourWS)
	featureRoomChecks(ctx, h, em, ourWS, []*client{A, B, A2}, payload)

	fmt.Println("\n-- Redis envelopes (channel  payload) for the same operations")
	cp.take()
	envelope := func(label string, f func()) {
		f()
		for _, m := range cp.take() {
			fmt.Printf("  %-28s %s\n", label, m)
		}
	}
	envelope("ours PublishToRoom", func() { _ = h.PublishToRoom(ctx, "mixed", "env", payload) })
	envelope("ignis send(room)", func() { ignisPost("/send", map[string]any{"destination": "mixed", "topic": "env", "data": payload}) })
	envelope("ours PublishToRoom excl", func() { _ = h.PublishToRoom(ctx, "mixed", "env", payload, A.id) })
	envelope("ignis emitter toRoom excl", func() {
		ignisPost("/emit", map[string]any{"kind": "room", "target": "mixed", "event": "env", "data": payload, "exclude": []string{A.id}})
	})
	envelope("go emitter ToRoom excl", func() { _ = em.ToRoom(ctx, "mixed", "env", payload, A.id) })
	envelope("ours PublishBroadcast", func() { _ = h.PublishBroadcast(ctx, "env", payload) })
	envelope("ignis send(broadcast)", func() { ignisPost("/send", map[string]any{"topic": "env", "data": payload}) })
	envelope("ignis emitter broadcast", func() { ignisPost("/emit", map[string]any{"kind": "broadcast", "event": "env", "data": payload}) })
	envelope("go emitter Broadcast", func() { _ = em.Broadcast(ctx, "env", payload) })
	envelope("ours Send(B local client)", func() { _ = h.Send(ctx, B.id, "env", payload) })
	envelope("ignis send(A local client)", func() { ignisPost("/send", map[string]any{"destination": A.id, "topic": "env", "data": payload}) })
	envelope("ours PublishToUser", func() { _ = h.PublishToUser(ctx, "ua", "env", payload) })
	envelope("ignis emitter toUser", func() {
		ignisPost("/emit", map[string]any{"kind": "user", "target": "ua", "event": "env", "data": payload})
	})
	envelope("go emitter ToUser", func() { _ = em.ToUser(ctx, "ua", "env", payload) })
	envelope("ignis emitter toClient", func() {
		ignisPost("/emit", map[string]any{"kind": "client", "target": B.id, "event": "env", "data": payload})
	})
	envelope("go emitter ToClient", func() { _ = em.ToClient(ctx, B.id, "env", payload) })
	hEnv := "h-envelope-" + *routing
	envelope("ours PublishToRoom(h-*)", func() { _ = h.PublishToRoom(ctx, hEnv, "env", payload) })
	envelope("go emitter ToRoom(h-*)", func() { _ = em.ToRoom(ctx, hEnv, "env", payload) })
	envelope("ignis send(h-*)", func() { ignisPost("/send", map[string]any{"destination": hEnv, "topic": "env", "data": payload}) })
	stopCap()
	for _, c := range all {
		c.take()
	}

	// --------------------------------------------------------- frame comparison
	fmt.Println("\n-- frames side by side (ignis | ours)")
	side := func(label, ig, ou string) {
		mark := "same"
		if normalize(ig) != normalize(ou) {
			mark = "DIFF"
		}
		fmt.Printf("  [%s] %s\n      ignis: %s\n      ours : %s\n", mark, label, ig, ou)
	}
	side("connected", connA, connB)

	// An exchange on a fresh connection per server: send each input, collect
	// what comes back (and whether the connection survives).
	type step struct {
		label  string
		input  string
		binary bool
	}
	exchange := func(url string, authFirst bool, steps []step) []string {
		c := dial("x", url)
		defer c.close()
		if authFirst {
			c.authenticate("ux")
			c.take()
		}
		var out []string
		for _, s := range steps {
			if s.binary {
				c.sendBinary(s.input)
			} else {
				c.sendRaw(s.input)
			}
			time.Sleep(250 * time.Millisecond)
			fs := frameTexts(c.take())
			res := strings.Join(fs, " , ")
			if res == "" {
				res = "(nothing)"
			}
			if !c.waitClosed(0) {
				out = append(out, res)
			} else {
				out = append(out, res+"  ->  "+c.closeInfo())
				break
			}
		}
		for len(out) < len(steps) {
			out = append(out, "(connection already closed)")
		}
		return out
	}
	pre := []step{
		{"pre-auth: not json", `not json`, false},
		{"pre-auth: []", `[]`, false},
		{"pre-auth: {\"event\":5}", `{"event":5}`, false},
		{"pre-auth: {} (no event)", `{}`, false},
		{"pre-auth: {\"event\":\"\"}", `{"event":""}`, false},
		{"pre-auth: heartbeat", `{"event":"heartbeat"}`, false},
		{"pre-auth: join", `{"event":"join","data":{"rooms":["r"]}}`, false},
		{"pre-auth: custom event", `{"event":"chat","data":1}`, false},
		{"pre-auth: null", `null`, false},
	}
	post := []step{
		{"authed: not json", `not json`, false},
		{"authed: []", `[]`, false},
		{"authed: {\"event\":5}", `{"event":5}`, false},
		{"authed: \"str\"", `"str"`, false},
		{"authed: second authenticate", `{"event":"authenticate","data":{"token":"user:ux"}}`, false},
		{"authed: join rooms not an array", `{"event":"join","data":{"rooms":"mixed"}}`, false},
		{"authed: join rooms [1,2]", `{"event":"join","data":{"rooms":[1,2]}}`, false},
		{"authed: join data missing", `{"event":"join"}`, false},
		{"authed: leave rooms not an array", `{"event":"leave","data":{"rooms":"ws-default"}}`, false},
		{"authed: binary JSON heartbeat", `{"event":"heartbeat"}`, true},
		{"authed: binary not json", `nope`, true},
		{"authed: client sends connected", `{"event":"connected","data":{}}`, false},
		{"authed: heartbeat", `{"event":"heartbeat"}`, false},
		{"authed: null", `null`, false},
		{"authed: after null, heartbeat", `{"event":"heartbeat"}`, false},
	}
	// before authentication: one fresh connection per input (AuthTimeout is short)
	for _, st := range pre {
		ig := exchange(*ignisWS, false, []step{st})
		ou := exchange(ourWS, false, []step{st})
		side(st.label+"   input "+st.input, ig[0], ou[0])
	}
	{
		ig := exchange(*ignisWS, true, post)
		ou := exchange(ourWS, true, post)
		for i, st := range post {
			side(st.label+"   input "+st.input, ig[i], ou[i])
		}
	}
	// join with rooms not an array may kill Ignis' handler: check the connection afterwards
	for _, s := range []step{
		{"authed: join rooms \"mixed\" then custom frame", `{"event":"join","data":{"rooms":"mixed"}}`, false},
	} {
		ig := exchange(*ignisWS, true, []step{s, {"then not json", "not json", false}})
		ou := exchange(ourWS, true, []step{s, {"then not json", "not json", false}})
		side(s.label+" (reply to the follow-up `not json`)", ig[1], ou[1])
	}

	// auth failure
	authFail := func(url, input string) string {
		c := dial("f", url)
		c.sendRaw(input)
		c.waitClosed(3 * time.Second)
		fs := frameTexts(c.take())
		c.close()
		return strings.Join(fs, " , ") + "  ->  " + c.closeInfo()
	}
	for _, in := range []string{
		`{"event":"authenticate","data":{"token":"bad"}}`,
		`{"event":"authenticate"}`,
		`{"event":"authenticate","data":"user:zz"}`,
	} {
		side("auth failure   input "+in, authFail(*ignisWS, in), authFail(ourWS, in))
	}

	if !*skipTimeouts {
		// auth timeout: no authenticate at all
		timeoutRun := func(url string, first string) string {
			c := dial("t", url)
			if first != "" {
				c.sendRaw(first)
			}
			c.waitClosed(*authTimeout*4 + 2*time.Second)
			fs := frameTexts(c.take())
			c.close()
			return strings.Join(fs, " , ") + "  ->  " + c.closeInfo()
		}
		var ig, ou string
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ig = timeoutRun(*ignisWS, "") }()
		go func() { defer wg.Done(); ou = timeoutRun(ourWS, "") }()
		wg.Wait()
		side(fmt.Sprintf("auth timeout (no authenticate; AuthTimeout %s)", *authTimeout), ig, ou)
		wg.Add(2)
		go func() { defer wg.Done(); ig = timeoutRun(*ignisWS, `{"event":"heartbeat"}`) }()
		go func() { defer wg.Done(); ou = timeoutRun(ourWS, `{"event":"heartbeat"}`) }()
		wg.Wait()
		side("auth timeout (heartbeat only)", ig, ou)

		// heartbeat timeout: authenticated, then silent
		hbRun := func(url string) string {
			c := dial("h", url)
			c.authenticate("uh")
			start := time.Now()
			c.take()
			c.waitClosed(*hbTimeout + *hbInterval*3 + 2*time.Second)
			fs := frameTexts(c.take())
			c.mu.Lock()
			pings := c.pings
			c.mu.Unlock()
			c.close()
			return fmt.Sprintf("%s  ->  %s (%s after connected; %d protocol pings seen)", strings.Join(fs, " , "), c.closeInfo(), c.closedAt.Sub(start).Round(100*time.Millisecond), pings)
		}
		wg.Add(2)
		go func() { defer wg.Done(); ig = hbRun(*ignisWS) }()
		go func() { defer wg.Done(); ou = hbRun(ourWS) }()
		wg.Wait()
		side(fmt.Sprintf("heartbeat timeout (silent after auth; interval %s, timeout %s)", *hbInterval, *hbTimeout), ig, ou)

		// heartbeat keeps alive
		keepRun := func(url string) string {
			c := dial("k", url)
			c.authenticate("uk")
			c.take()
			c.heartbeat(*hbInterval / 2)
			c.waitClosed(*hbTimeout + *hbInterval*2)
			fs := frameTexts(c.take())
			info := c.closeInfo()
			c.close()
			return strings.Join(fs, " , ") + " -> " + info
		}
		wg.Add(2)
		go func() { defer wg.Done(); ig = keepRun(*ignisWS) }()
		go func() { defer wg.Done(); ou = keepRun(ourWS) }()
		wg.Wait()
		side("client heartbeating every interval/2 (replies; state at the end)", ig, ou)
	}

	// shutdown close code of ours (Ignis' is observed by the runner script when Bun stops)
	for _, c := range []*client{A, B, A2, UI, UO} {
		if c.stopHB != nil {
			close(c.stopHB)
			c.stopHB = nil
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = h.Shutdown(sctx)
	B.waitClosed(2 * time.Second)
	fmt.Printf("\nours Shutdown -> B: %s\n", B.closeInfo())
	_ = srv.Close()
	for _, c := range []*client{A, A2, UI, UO} {
		c.close()
	}

	fmt.Printf("\n== routing=%s: %d passed, %d failed, %d Ignis-vs-SPEC observations\n", *routing, passes, failures, observations)
	if failures > 0 {
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- fleet-wide disconnect

// disconnectChecks: a user with one session on each server; our fleet-wide
// disconnects (SPEC §9.2, a control message on ws:control) close our session
// and leave the Ignis one alone, since Ignis subscribes only ws:broadcast and
// ws:room:*, ws:client:*, ws:user:* and never sees ws:control. Each case uses
// a fresh user, room and pair of sessions.
func disconnectChecks(ctx context.Context, h *server.Helper, em *emitter.Emitter, cp *capture, ourWS string) {
	fmt.Println("\n-- fleet-wide disconnect (ws:control): closes our sessions, Ignis must ignore it")
	logFrom := ignisLogMark()
	type dcCase struct {
		name       string
		d          server.Disconnect
		closesOurs bool   // the target includes our session of the user
		by         string // serverId expected on the control message
		// target is "user" or "client" (the Ignis session's id)
		target  string
		trigger func(user, ignisID string, d server.Disconnect) error
	}
	cases := []dcCase{
		{"ours DisconnectUser", server.Disconnect{Code: 4010, Reason: "Logged out"}, true, h.ServerID(), "user",
			func(user, _ string, d server.Disconnect) error { return h.DisconnectUser(ctx, user, d) }},
		{"go emitter DisconnectUser", server.Disconnect{Code: 4020, Reason: "Password changed"}, true, "emitter", "user",
			func(user, _ string, d server.Disconnect) error { return em.DisconnectUser(ctx, user, d) }},
		{"ours DisconnectClient(<Ignis client id>)", server.Disconnect{Code: 4030, Reason: "Kicked"}, false, h.ServerID(), "client",
			func(_, id string, d server.Disconnect) error { return h.DisconnectClient(ctx, id, d) }},
	}
	var opened []*client
	for i, dc := range cases {
		user, room := fmt.Sprintf("ud%d", i+1), fmt.Sprintf("dc%d", i+1)
		di := dial("DI(ignis,"+user+")", *ignisWS)
		do := dial("DO(ours,"+user+")", ourWS)
		opened = append(opened, di, do)
		di.authenticate(user)
		do.authenticate(user)
		for _, c := range []*client{di, do} {
			c.heartbeat(*hbInterval / 2)
			c.sendRaw(fmt.Sprintf(`{"event":"join","data":{"rooms":[%q]}}`, room))
		}
		time.Sleep(300 * time.Millisecond)
		di.take()
		do.take()
		cp.take()

		name := dc.name + " [" + user + "]"
		if err := dc.trigger(user, di.id, dc.d); err != nil {
			fail(name, "error: %v", err)
			continue
		}
		if dc.closesOurs {
			do.waitClosed(3 * time.Second)
		}
		time.Sleep(*settle)

		// The control message went out on Redis, where the Ignis server
		// could have seen it (ours closes its local session without Redis).
		wantTarget := user
		if dc.target == "client" {
			wantTarget = di.id
		}
		var ctl []string
		for _, m := range cp.take() {
			if p, ok := strings.CutPrefix(m, "ws:control  "); ok {
				ctl = append(ctl, p)
			}
		}
		if len(ctl) != 1 {
			fail(name+": one message on ws:control", "got %d: %v", len(ctl), ctl)
		} else {
			var m struct {
				ServerID string `json:"serverId"`
				Type     string `json:"type"`
				User     string `json:"user"`
				Client   string `json:"client"`
				Code     int    `json:"code"`
				Reason   string `json:"reason"`
			}
			err := json.Unmarshal([]byte(ctl[0]), &m)
			got := map[string]string{"user": m.User, "client": m.Client}[dc.target]
			if err != nil || m.ServerID != dc.by || m.Type != "disconnect" || got != wantTarget || m.Code != dc.d.Code || m.Reason != dc.d.Reason {
				fail(name+": one message on ws:control", "%s (err %v)", ctl[0], err)
			} else {
				pass(name+": one message on ws:control", "%s", ctl[0])
			}
		}

		// Our session: closed with the given code and reason, or untouched
		// when the target was the Ignis client's id.
		do.mu.Lock()
		closed, code, reason := do.closed, do.code, do.reason
		do.mu.Unlock()
		switch {
		case dc.closesOurs && closed && code == dc.d.Code && reason == dc.d.Reason:
			pass(name+": our session closed", "%s", do.closeInfo())
		case dc.closesOurs:
			fail(name+": our session closed", "want close %d %q, got %s", dc.d.Code, dc.d.Reason, do.closeInfo())
		case !closed:
			if fs := do.take(); len(fs) > 0 {
				fail(name+": our session (not the target) untouched", "frames %v", frameTexts(fs))
			} else {
				pass(name+": our session (not the target) untouched", "open, no frame")
			}
		default:
			fail(name+": our session (not the target) untouched", "%s", do.closeInfo())
		}

		// The Ignis session: no frame, no close, still authenticated in its room.
		fs := di.take()
		state, listed := "not listed by /clients", false
		for _, ic := range ignisClients() {
			if ic.ID == di.id {
				state = fmt.Sprintf("%s in %v", ic.State, ic.Rooms)
				listed = ic.State == "authenticated" && slices.Contains(ic.Rooms, room)
			}
		}
		if info := di.closeInfo(); len(fs) > 0 || info != "open" || !listed {
			fail(name+": Ignis session untouched", "%s; frames %v; Ignis: %s", info, frameTexts(fs), state)
		} else {
			pass(name+": Ignis session untouched", "open, no frame; Ignis: %s", state)
		}

		// And it still works: our publishes to the user and to the room reach it.
		stillOurs := 0
		if !dc.closesOurs {
			stillOurs = 1
		}
		all := []*client{di, do}
		deliver(name+": then ours PublishToUser", want{di: 1, do: stillOurs}, all, func(ev string) error {
			return h.PublishToUser(ctx, user, ev, map[string]any{"after": dc.name})
		})
		deliver(name+": then ours PublishToRoom("+room+")", want{di: 1, do: stillOurs}, all, func(ev string) error {
			return h.PublishToRoom(ctx, room, ev, map[string]any{"after": dc.name})
		})
	}
	// No Ignis session was closed later either (deliver fails when one is
	// closed before a publish; this covers the end).
	var ignisOpen, ignisGone []string
	for _, c := range opened {
		if strings.HasPrefix(c.name, "DI(") {
			if info := c.closeInfo(); info == "open" {
				ignisOpen = append(ignisOpen, c.name)
			} else {
				ignisGone = append(ignisGone, c.name+" "+info)
			}
		}
	}
	if len(ignisGone) > 0 || len(ignisOpen) != len(cases) {
		fail("Ignis sessions still open at the end", "open %v; closed %v", ignisOpen, ignisGone)
	} else {
		pass("Ignis sessions still open at the end", "%s", strings.Join(ignisOpen, ", "))
	}
	for _, c := range opened {
		c.close()
	}

	// Ignis must not have noticed: nothing it logged meanwhile is an error
	// or names ws:control (an Ignis that received a control message would
	// log "Invalid Redis message shape | channel: ws:control").
	checkIgnisLog("Ignis log during these checks: no error, no ws:control", logFrom)
}

// ---------------------------------------------------------------- presence and history rooms

// Our server keeps presence for the rooms "p-*" (with presence events) and
// a history of 100 messages for the rooms "h-*"; the Go emitter is given
// the same HistoryFor, as the README asks of a fleet.
func presenceRoom(room string) bool { return strings.HasPrefix(room, "p-") }

func historyFor(room string) (int, time.Duration) {
	if strings.HasPrefix(room, "h-") {
		return 100, 0
	}
	return 0, 0
}

// featureRoomChecks: an Ignis server keeps working next to ours when our
// presence and history rooms are in use. Both features travel as ordinary
// room envelopes on ws:room:{room} (a history message carries one extra
// field, "offset"), so Ignis members of those rooms get them as plain
// {event,data} frames; Ignis' own publishes stay plain PUBLISHes, outside
// the stream, and Ignis members are never recorded in presence. others are
// clients on both servers outside these rooms: they must get nothing.
func featureRoomChecks(ctx context.Context, h *server.Helper, em *emitter.Emitter, ourWS string, others []*client, payload any) {
	logFrom := ignisLogMark()
	historyChecks(ctx, h, em, ourWS, others, payload)
	presenceChecks(ctx, h, ourWS, others)
	checkIgnisLog("Ignis log during history/presence checks: no error", logFrom)
}

// dialJoined dials url, authenticates user, keeps it alive and joins room.
func dialJoined(name, url, user, room string) *client {
	c := dial(name, url)
	c.authenticate(user)
	c.heartbeat(*hbInterval / 2)
	c.sendRaw(fmt.Sprintf(`{"event":"join","data":{"rooms":[%q]}}`, room))
	return c
}

// sameJSON reports whether raw and v encode the same JSON value.
func sameJSON(raw json.RawMessage, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var x, y any
	if json.Unmarshal(raw, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// frameFields decodes a frame and checks that it has exactly the keys given.
func frameFields(raw string, keys ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, err
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("keys %v, want %v", got, want)
	}
	return m, nil
}

// plainFrame accepts {"event","data"} and nothing more, data equal to
// payload: what Ignis sends for every message, and what ours sends for a
// message that carries no offset.
func plainFrame(payload any) frameCheck {
	return func(raw string) error {
		m, err := frameFields(raw, "event", "data")
		if err != nil {
			return err
		}
		if !sameJSON(m["data"], payload) {
			return fmt.Errorf("data %s", m["data"])
		}
		return nil
	}
}

// histMsg is a history message as one of our clients received it.
type histMsg struct{ event, offset string }

var reOffset = regexp.MustCompile(`^([0-9a-f]+):(\d+)-(\d+)$`)

// offsetAfter reports whether offset b follows a in the same epoch.
func offsetAfter(a, b string) bool {
	ma, mb := reOffset.FindStringSubmatch(a), reOffset.FindStringSubmatch(b)
	if ma == nil || mb == nil || ma[1] != mb[1] {
		return false
	}
	num := func(s string) int64 {
		var n int64
		fmt.Sscan(s, &n)
		return n
	}
	if ta, tb := num(ma[2]), num(mb[2]); ta != tb {
		return ta < tb
	}
	return num(ma[3]) < num(mb[3])
}

// historyFrame accepts {"event","data","room","offset"}: the room given, data
// equal to payload, an offset "<epoch>:<stream id>" after the last one in
// *seen (same epoch); it appends the message to *seen.
func historyFrame(room string, payload any, seen *[]histMsg) frameCheck {
	return func(raw string) error {
		m, err := frameFields(raw, "event", "data", "room", "offset")
		if err != nil {
			return err
		}
		var r, off, ev string
		_ = json.Unmarshal(m["room"], &r)
		_ = json.Unmarshal(m["offset"], &off)
		_ = json.Unmarshal(m["event"], &ev)
		switch {
		case r != room:
			return fmt.Errorf("room %q, want %q", r, room)
		case !reOffset.MatchString(off):
			return fmt.Errorf("offset %q is not <epoch>:<stream id>", off)
		case len(*seen) > 0 && !offsetAfter((*seen)[len(*seen)-1].offset, off):
			return fmt.Errorf("offset %q does not follow %q", off, (*seen)[len(*seen)-1].offset)
		case !sameJSON(m["data"], payload):
			return fmt.Errorf("data %s", m["data"])
		}
		*seen = append(*seen, histMsg{ev, off})
		return nil
	}
}

// historyChecks: a user on each server in one history room. Our publishes
// and the Go emitter's reach the Ignis member once as {event,data} (Ignis
// ignores "offset") and ours once with room and offset, in stream order;
// Ignis' helper.send and its emitter are plain PUBLISHes: they reach both
// once, ours without offset, and are not in the stream.
func historyChecks(ctx context.Context, h *server.Helper, em *emitter.Emitter, ourWS string, others []*client, payload any) {
	room := "h-interop-" + *routing
	fmt.Printf("\n-- history room %s (HistoryFor size 100): Ignis gets {event,data}, ours room+offset\n", room)
	hi := dialJoined("HI(ignis,uhi)", *ignisWS, "uhi", room)
	ho := dialJoined("HO(ours,uho)", ourWS, "uho", room)
	defer hi.close()
	defer ho.close()
	time.Sleep(300 * time.Millisecond)
	all := append([]*client{hi, ho}, others...)

	var seen []histMsg // what ho received with an offset, in order
	ignisEvents := map[string]bool{}
	hist := map[*client]frameCheck{hi: plainFrame(payload), ho: historyFrame(room, payload, &seen)}
	plain := map[*client]frameCheck{hi: plainFrame(payload), ho: plainFrame(payload)}
	deliverX("ours PublishToRoom(h-)", want{hi: 1, ho: 1}, all, nil, hist, func(ev string) error {
		return h.PublishToRoom(ctx, room, ev, payload)
	})
	deliverX("ours PublishToRoom(h-, exclude HI)", want{ho: 1}, all, nil, hist, func(ev string) error {
		return h.PublishToRoom(ctx, room, ev, payload, hi.id)
	})
	deliverX("ours PublishToRoom(h-, exclude HO)", want{hi: 1}, all, nil, hist, func(ev string) error {
		return h.PublishToRoom(ctx, room, ev, payload, ho.id)
	})
	deliverX("ours Send(h-) [local room]", want{hi: 1, ho: 1}, all, nil, hist, func(ev string) error {
		return h.Send(ctx, room, ev, payload)
	})
	deliverX("go emitter ToRoom(h-) [HistoryFor]", want{hi: 1, ho: 1}, all, nil, hist, func(ev string) error {
		return em.ToRoom(ctx, room, ev, payload)
	})
	deliverX("ignis send(h-) [plain PUBLISH: ours without offset]", want{hi: 1, ho: 1}, all, nil, plain, func(ev string) error {
		ignisEvents[ev] = true
		ignisPost("/send", map[string]any{"destination": room, "topic": ev, "data": payload})
		return nil
	})
	deliverX("ignis emitter toRoom(h-) [plain PUBLISH]", want{hi: 1, ho: 1}, all, nil, plain, func(ev string) error {
		ignisEvents[ev] = true
		ignisPost("/emit", map[string]any{"kind": "room", "target": room, "event": ev, "data": payload})
		return nil
	})

	// The stream holds exactly what ours received with an offset, with
	// those offsets, in that order, and none of Ignis' messages. (The
	// exclude-HO message is in it but was not delivered to ho.)
	const name = "History(h-): our messages in order, not Ignis'"
	msgs, recovered, err := h.History(ctx, room, "")
	if err != nil || !recovered {
		fail(name, "recovered %v, err %v", recovered, err)
		return
	}
	var got []histMsg
	var fromIgnis []string
	for _, m := range msgs {
		if ignisEvents[m.Event] {
			fromIgnis = append(fromIgnis, m.Event)
		}
		if slices.ContainsFunc(seen, func(s histMsg) bool { return s.event == m.Event }) {
			got = append(got, histMsg{m.Event, m.Offset})
		}
	}
	switch {
	case len(fromIgnis) > 0:
		fail(name, "Ignis' messages in the stream: %v", fromIgnis)
	case len(seen) != 4 || !slices.Equal(got, seen):
		fail(name, "HO received %v; stream has %v", seen, got)
	default:
		pass(name, "%d entries; HO's %d offsets match the stream's (%s … %s)", len(msgs), len(seen), seen[0].offset, seen[len(seen)-1].offset)
	}
}

// presenceChecks: an Ignis member and our client in one presence room.
// Our client's join, leave and disconnect reach the Ignis member as
// presence events (room messages); Presence lists our member only: Ignis
// neither records its members nor sends presence events.
func presenceChecks(ctx context.Context, h *server.Helper, ourWS string, others []*client) {
	room := "p-interop-" + *routing
	fmt.Printf("\n-- presence room %s (PresenceRooms, PresenceEvents): our joins and leaves reach Ignis members\n", room)
	pi := dialJoined("PI(ignis,upi)", *ignisWS, "upi", room)
	defer pi.close()
	time.Sleep(300 * time.Millisecond)

	po := dial("PO(ours,upo)", ourWS)
	po.authenticate("upo")
	po.heartbeat(*hbInterval / 2)
	all := append([]*client{pi, po}, others...)
	ev := func(action string) map[string]string {
		return map[string]string{"room": room, "action": action, "clientId": po.id, "userId": "upo"}
	}
	join := func() error {
		po.sendRaw(fmt.Sprintf(`{"event":"join","data":{"rooms":[%q]}}`, room))
		return nil
	}
	presenceDeliver("ours: client joins p- -> presence join", want{pi: 1}, all, ev("join"), join)
	presenceList(ctx, h, "Presence(p-) lists our member, not the Ignis one", room, po.id+"/upo")

	pi2 := dial("PI2(ignis,upi2)", *ignisWS)
	defer pi2.close()
	pi2.authenticate("upi2")
	pi2.heartbeat(*hbInterval / 2)
	all = append(all, pi2)
	presenceDeliver("ignis: client joins p- -> no presence event", want{}, all, nil, func() error {
		pi2.sendRaw(fmt.Sprintf(`{"event":"join","data":{"rooms":[%q]}}`, room))
		return nil
	})
	presenceList(ctx, h, "Presence(p-) after the Ignis join: still ours only", room, po.id+"/upo")

	presenceDeliver("ours: client leaves p- -> presence leave", want{pi: 1, pi2: 1}, all, ev("leave"), func() error {
		po.sendRaw(fmt.Sprintf(`{"event":"leave","data":{"rooms":[%q]}}`, room))
		return nil
	})
	presenceList(ctx, h, "Presence(p-) after the leave: empty", room)
	presenceDeliver("ours: client rejoins p- -> presence join", want{pi: 1, pi2: 1}, all, ev("join"), join)
	presenceDeliver("ours: client disconnects -> presence leave", want{pi: 1, pi2: 1}, all, ev("leave"), func() error {
		po.close()
		return nil
	})
	presenceList(ctx, h, "Presence(p-) after the disconnect: empty", room)
}

// presenceDeliver runs trigger and checks how many presence events each
// client received within settle: each must be a plain {event,data} frame
// whose data is wantData.
func presenceDeliver(name string, w want, all []*client, wantData map[string]string, trigger func() error) {
	for _, c := range all {
		c.take()
	}
	if err := trigger(); err != nil {
		fail(name, "trigger error: %v", err)
		return
	}
	time.Sleep(*settle)
	var bad, got []string
	var sample string
	for _, c := range all {
		n := 0
		for _, f := range c.take() {
			if eventOf(f.data) != "presence" {
				continue
			}
			n++
			sample = f.data
			m, err := frameFields(f.data, "event", "data")
			var d map[string]string
			if err == nil {
				err = json.Unmarshal(m["data"], &d)
			}
			if err == nil && !maps.Equal(d, wantData) {
				err = fmt.Errorf("want data %v", wantData)
			}
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s frame %s: %v", c.name, f.data, err))
			}
		}
		if n > 0 {
			got = append(got, fmt.Sprintf("%s×%d", c.name, n))
		}
		if n != w[c] {
			bad = append(bad, fmt.Sprintf("%s got %d want %d", c.name, n, w[c]))
		}
	}
	if len(bad) > 0 {
		fail(name, "%s", strings.Join(bad, "; "))
		return
	}
	if len(got) == 0 {
		pass(name, "nobody (as expected)")
		return
	}
	pass(name, "%s: %s", strings.Join(got, ", "), sample)
}

// presenceList waits (up to 3 s: presence is written by a worker) until
// Presence(room) lists exactly the members given ("<client id>/<user id>"),
// all on our server.
func presenceList(ctx context.Context, h *server.Helper, name, room string, members ...string) {
	want := make([]string, 0, len(members))
	for _, m := range members {
		want = append(want, m+"@"+h.ServerID())
	}
	var got []string
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; {
		var entries []server.PresenceEntry
		entries, err = h.Presence(ctx, room)
		got = got[:0]
		for _, e := range entries {
			got = append(got, e.ClientID+"/"+e.UserID+"@"+e.ServerID)
		}
		if (err == nil && slices.Equal(got, want)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case err != nil:
		fail(name, "%v", err)
	case !slices.Equal(got, want):
		fail(name, "got %v, want %v", got, want)
	case len(got) == 0:
		pass(name, "no members")
	default:
		pass(name, "%s", strings.Join(got, ", "))
	}
}

// ignisLogMark returns the size of the Ignis log now (-1 if it cannot be
// read), the start of the slice checkIgnisLog reads.
func ignisLogMark() int64 {
	if *ignisLog == "" {
		return -1
	}
	fi, err := os.Stat(*ignisLog)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// checkIgnisLog passes when what Ignis logged after from holds no error and
// no mention of ws:control.
func checkIgnisLog(name string, from int64) {
	switch {
	case *ignisLog == "":
		fmt.Printf("SKIP  %-58s %s\n", name, "no -ignis-log given (run.sh passes it)")
	case from < 0:
		fail(name, "cannot read %s", *ignisLog)
	default:
		time.Sleep(300 * time.Millisecond) // let Bun's writes land
		bad, n, err := logErrorsSince(*ignisLog, from)
		switch {
		case err != nil:
			fail(name, "%v", err)
		case len(bad) > 0:
			fail(name, "%d of %d lines:\n        %s", len(bad), n, strings.Join(bad, "\n        "))
		default:
			pass(name, "%d lines logged, none an error or about ws:control (%s)", n, *ignisLog)
		}
	}
}

var (
	reANSI     = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	reLogError = regexp.MustCompile(`(?i)ws:control|\] error:|uncaughtException|unhandled`)
)

// logErrorsSince returns the lines of the log file written after offset
// that are errors or mention ws:control, and how many lines there were.
func logErrorsSince(path string, offset int64) ([]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	var bad []string
	n := 0
	for _, line := range strings.Split(reANSI.ReplaceAllString(string(b), ""), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n++
		if reLogError.MatchString(line) {
			bad = append(bad, line)
		}
	}
	return bad, n, nil
}

var (
	reUUID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	reTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reUser = regexp.MustCompile(`"userId":"[^"]*"`)
	reDur  = regexp.MustCompile(`after [0-9.]+m?s`)
	reDur2 = regexp.MustCompile(`\([0-9.]+m?s after connected`)
)

// normalize blanks ids, user ids, timestamps (keeping their format: digits
// of fraction and zone) and durations, so that side-by-side frames compare by shape.
func normalize(s string) string {
	s = reUUID.ReplaceAllString(s, "<uuid>")
	s = reUser.ReplaceAllString(s, `"userId":"<user>"`)
	s = reTime.ReplaceAllStringFunc(s, func(t string) string {
		return regexp.MustCompile(`\d`).ReplaceAllString(t, "d")
	})
	s = reDur.ReplaceAllString(s, "after <t>")
	s = reDur2.ReplaceAllString(s, "(<t> after connected")
	return s
}

func frameTexts(fs []frame) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		s := f.data
		if f.typ == websocket.BinaryMessage {
			s = "binary:" + s
		}
		out = append(out, s)
	}
	return out
}
