package server_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

func TestRateLimitClosesAFlood(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{MessageRate: 1, MessageBurst: 5}})
	c := ts.connect(t, "flood")
	for range 4 { // the rest of the burst (authenticate took one): answered normally
		c.SendRaw("x")
	}
	for range 4 {
		c.ExpectError(protocol.ErrMsgInvalidFormat)
	}
	// The flood: one error, then the close; further frames get nothing.
	for range 50 {
		if err := c.Conn.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
			break
		}
	}
	c.ExpectError(protocol.ErrMsgRateLimited)
	c.ExpectClose(websocket.ClosePolicyViolation, protocol.ReasonRateLimited)
	if got := ts.h.Stats().RateLimited; got != 1 {
		t.Errorf("rate-limited count %d", got)
	}
}

func TestMaxPendingConnections(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{MaxPendingConnections: 2}})
	a := ts.dial(t)
	b := ts.dial(t)
	a.Probe()
	b.Probe()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	_, resp, err := d.Dial(ts.wsURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third pending connection: err %v, resp %v", err, resp)
	}
	// Authenticating frees a place.
	a.auth("a")
	c := ts.dial(t)
	c.auth("c")
	if got := ts.h.Stats().RefusedUpgrades; got != 1 {
		t.Errorf("refused upgrades %d", got)
	}
}

func TestMaxConnectionsPerUser(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{MaxConnectionsPerUser: 2}})
	ts.connect(t, "multi")
	ts.connect(t, "multi")
	third := ts.dial(t)
	third.Send(protocol.EventAuthenticate, map[string]string{"token": "user:multi"})
	third.ExpectError(protocol.ErrMsgTooManyConnections)
	third.ExpectClose(websocket.ClosePolicyViolation, protocol.ReasonTooManyConnections)
	eventually(t, "refused session gone", func() bool { return len(ts.h.Clients()) == 2 })
	if got := len(ts.h.ClientsByUser("multi")); got != 2 {
		t.Errorf("user has %d sessions", got)
	}
	ts.connect(t, "other") // other users are not affected
}

func TestCallbackPanicsAreContained(t *testing.T) {
	disconnects := atomic.Int64{}
	ts := startServer(t, nil, server.Options{
		ValidateRoom: func(context.Context, server.ValidateRoomRequest) ([]string, error) { panic("validate") },
		ClientDisconnected: func(context.Context, server.ClientDisconnectedEvent) error {
			disconnects.Add(1)
			panic("disconnected")
		},
		OutboundTransformer: func(context.Context, server.OutboundRequest) (*server.OutboundResult, error) {
			panic("transformer")
		},
	})
	c := ts.connect(t, "p")
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"r"}})
	c.Probe()
	enc := ts.connect(t, "enc")
	if err := ts.h.EnableClientEncryption(enc.ID); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.Broadcast("b", 1); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("b", "1")
	enc.Probe() // its copy was dropped, the connection lives
	_ = enc.Conn.Close()
	eventually(t, "disconnect callback", func() bool { return disconnects.Load() == 1 })
	c.Probe()
	if st := ts.h.Stats(); st.CallbackPanics != 3 {
		t.Errorf("panics counted %d, want 3", st.CallbackPanics)
	}
}

func TestDrainDeliversQueuedMessagesAndClosesInBatches(t *testing.T) {
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		Config: server.Config{DrainWindow: 300 * time.Millisecond, DrainBatches: 3},
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	var clients []*wsClient
	for range 6 {
		clients = append(clients, ts.connect(t, "drain"))
	}
	for i := range 20 {
		if err := ts.h.Broadcast("last-words", i); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		done <- ts.h.Shutdown(ctx)
	}()
	var closedAt []time.Duration
	for _, c := range clients {
		for i := range 20 {
			f := c.Expect("last-words")
			if string(f.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d: %s", i, f.Data)
			}
		}
		c.ExpectClose(protocol.CloseGoingAway, protocol.ReasonShutdown)
		closedAt = append(closedAt, time.Since(start))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if disconnected.Count() != 6 {
		t.Errorf("%d disconnect callbacks", disconnected.Count())
	}
	// Three batches over 300ms: the last close comes at least two pauses
	// after the first.
	if spread := time.Since(start); spread < 200*time.Millisecond {
		t.Errorf("drain took %v, want the closes spread over the window", spread)
	}
	_ = closedAt
	// New upgrades are refused as soon as the drain starts.
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after shutdown: err %v resp %v", err, resp)
	}
}

func TestShutdownHonoursItsContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block) // lets the stuck callback finish before goleak looks
	ts := startServer(t, nil, server.Options{
		ClientDisconnected: func(ctx context.Context, _ server.ClientDisconnectedEvent) error {
			<-block // a disconnect callback that hangs
			return nil
		},
	})
	ts.connect(t, "stuck")
	ts.shutdownErrOK = true
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ts.h.Shutdown(ctx) }()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want deadline exceeded", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not return after its context ended")
	}
}

func TestIdleConnectionsHoldOneGoroutine(t *testing.T) {
	defer server.SetWriterIdle(20 * time.Millisecond)()
	ts := startServer(t, nil, server.Options{})
	base := runtime.NumGoroutine()
	const n = 20
	var clients []*wsClient
	for i := range n {
		clients = append(clients, ts.connect(t, strconv.Itoa(i)))
	}
	// Each connection: the server's reader, plus the test client's own
	// reader-less conn (no goroutine). Writers are retired when idle.
	eventually(t, "idle writers retired", func() bool { return runtime.NumGoroutine() <= base+n })
	if err := ts.h.Broadcast("wake", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.ExpectData("wake", "1")
	}
}
