package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// Environment of the fan-out benchmarks' client process.
const (
	envClientAddr  = "WSCOMPONENT_BENCH_CLIENT_ADDR"
	envClientCount = "WSCOMPONENT_BENCH_CLIENT_COUNT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envClientAddr) != "" {
		// Started by a fan-out benchmark as its client process.
		if err := fanoutClientProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "client process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; nothing waits by sleeping.
const waitTimeout = 5 * time.Second

// tokenAuth accepts {"token":"user:<id>"}; "reject" is refused, "error"
// fails and "panic" panics.
func tokenAuth(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	switch {
	case strings.HasPrefix(d.Token, "user:"):
		return &server.AuthResult{UserID: strings.TrimPrefix(d.Token, "user:"), Metadata: map[string]any{"role": "tester"}}, nil
	case d.Token == "error":
		return nil, errors.New("token store down")
	case d.Token == "panic":
		panic("authenticate exploded")
	}
	return nil, nil
}

type testServer struct {
	t testing.TB
	// shutdownErrOK is set by tests whose own Shutdown is expected to fail;
	// the cleanup's Shutdown then returns the same error.
	shutdownErrOK bool
	h             *server.Helper
	srv           *httptest.Server
	redis         *redistest.Server
}

// startServer runs a configured Helper behind an httptest server. Missing
// Redis and Authenticate options are filled in.
func startServer(t testing.TB, rs *redistest.Server, opts server.Options) *testServer {
	t.Helper()
	if rs == nil {
		rs = redistest.Start(t)
	}
	if opts.Redis == nil {
		opts.Redis = rs.Client(t)
	}
	if opts.Authenticate == nil {
		opts.Authenticate = tokenAuth
	}
	h, err := server.New(opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Configure(ctx); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	srv := httptest.NewServer(h)
	ts := &testServer{t: t, h: h, srv: srv, redis: rs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil && !ts.shutdownErrOK {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return ts
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.srv.URL, "http") }

type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	id   string
}

type inFrame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    string          `json:"id"`
}

func (ts *testServer) dial(t testing.TB) *wsClient {
	t.Helper()
	return ts.dialHeader(t, nil)
}

func (ts *testServer) dialHeader(t testing.TB, hdr http.Header) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	conn, resp, err := d.Dial(ts.wsURL(), hdr)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *wsClient) send(event string, data any) {
	c.t.Helper()
	m := map[string]any{"event": event}
	if data != nil {
		m["data"] = data
	}
	b, _ := json.Marshal(m)
	c.sendRaw(string(b))
}

// next reads one frame, failing the test after waitTimeout.
func (c *wsClient) next() inFrame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f inFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %q is not JSON: %v", b, err)
	}
	return f
}

// expect reads the next frame and checks its event.
func (c *wsClient) expect(event string) inFrame {
	c.t.Helper()
	f := c.next()
	if f.Event != event {
		c.t.Fatalf("got event %q (data %s), want %q", f.Event, f.Data, event)
	}
	return f
}

// expectError reads the next frame and checks it is an error with msg.
func (c *wsClient) expectError(msg string) {
	c.t.Helper()
	f := c.expect(protocol.EventError)
	var d protocol.ErrorData
	_ = json.Unmarshal(f.Data, &d)
	if d.Message != msg {
		c.t.Fatalf("error message %q, want %q", d.Message, msg)
	}
}

// expectData reads the next frame and checks event and data.
func (c *wsClient) expectData(event, wantJSON string) {
	c.t.Helper()
	f := c.expect(event)
	if !jsonEqual(f.Data, wantJSON) {
		c.t.Fatalf("%s data %s, want %s", event, f.Data, wantJSON)
	}
}

// probe proves that nothing was queued for the client before this point:
// it sends an invalid frame and expects the answer to it as the very next
// frame, since a client's frames leave in order.
func (c *wsClient) probe() {
	c.t.Helper()
	c.sendRaw("probe: not json")
	c.expectError(protocol.ErrMsgInvalidFormat)
}

// expectClose reads until the connection closes and checks code and reason.
func (c *wsClient) expectClose(code int, reason string) {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		_, b, err := c.conn.ReadMessage()
		if err == nil {
			c.t.Logf("frame before close: %s", b)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("read ended with %v, want close %d", err, code)
		}
		if ce.Code != code || ce.Text != reason {
			c.t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// auth authenticates as userID and returns the connected payload.
func (c *wsClient) auth(userID string) protocol.ConnectedData {
	c.t.Helper()
	c.send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID})
	f := c.expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.t.Fatalf("connected data %s: %v", f.Data, err)
	}
	c.id = d.ID
	return d
}

func (ts *testServer) connect(t testing.TB, userID string) *wsClient {
	t.Helper()
	c := ts.dial(t)
	c.auth(userID)
	return c
}

func jsonEqual(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// recorder collects callback events for assertions.
type recorder[T any] struct {
	mu sync.Mutex
	ch chan T
	n  int
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{ch: make(chan T, 1024)} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
	r.ch <- v
}

func (r *recorder[T]) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *recorder[T]) wait(t testing.TB) T {
	t.Helper()
	select {
	case v := <-r.ch:
		return v
	case <-time.After(waitTimeout):
		var zero T
		t.Fatalf("timed out waiting for %T", zero)
		return zero
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newHTTPServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	return httptest.NewServer(h)
}
