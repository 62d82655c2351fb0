package encryption_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; nothing waits by sleeping.
const waitTimeout = 5 * time.Second

// tokenAuth accepts {"token":"user:<id>"} and refuses anything else.
func tokenAuth(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	if id, ok := strings.CutPrefix(d.Token, "user:"); ok {
		return &server.AuthResult{UserID: id}, nil
	}
	return nil, nil
}

type testServer struct {
	h    *server.Helper
	srv  *httptest.Server
	pair *encryption.Pair
}

// newPair returns a Pair for tests.
func newPair(t testing.TB, opts encryption.Options) *encryption.Pair {
	t.Helper()
	p, err := encryption.New(opts)
	if err != nil {
		t.Fatalf("encryption.New: %v", err)
	}
	return p
}

// startServer runs a configured Helper behind an httptest server. opts gets
// Redis and Authenticate when missing; pair, when given, is applied to opts
// before edit, which may change what Apply set.
func startServer(t testing.TB, rs *redistest.Server, pair *encryption.Pair, opts server.Options, edit func(*server.Options)) *testServer {
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
	if pair != nil {
		pair.Apply(&opts)
	}
	if edit != nil {
		edit(&opts)
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
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return &testServer{h: h, srv: srv, pair: pair}
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.srv.URL, "http") }

// wsClient is a Go stand-in for the browser client: it does the real ECDH
// with helpers/ecdh and decrypts what the server sends.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	priv *ecdh.PrivateKey
	key  *ecdh.Key
	aad  []byte
	id   string
}

type inFrame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    string          `json:"id"`
}

func (ts *testServer) dial(t testing.TB) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	conn, resp, err := d.Dial(ts.wsURL(), nil)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	priv, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{t: t, conn: conn, priv: priv}
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
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// sendEncrypted seals {"event","data"} with the client's key and sends it
// as an "encrypted" frame.
func (c *wsClient) sendEncrypted(event string, data any) {
	c.t.Helper()
	sealed, err := c.key.EncryptJSON(map[string]any{"event": event, "data": data}, c.aad)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(protocol.EventEncrypted, sealed)
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

func (c *wsClient) expect(event string) inFrame {
	c.t.Helper()
	f := c.next()
	if f.Event != event {
		c.t.Fatalf("got event %q (data %s), want %q", f.Event, f.Data, event)
	}
	return f
}

// expectData reads a plaintext frame and checks event and data.
func (c *wsClient) expectData(event, wantJSON string) {
	c.t.Helper()
	f := c.expect(event)
	if !jsonEqual(f.Data, wantJSON) {
		c.t.Fatalf("%s data %s, want %s", event, f.Data, wantJSON)
	}
}

// decrypt opens an "encrypted" frame and returns the frame inside.
func (c *wsClient) decrypt(f inFrame) inFrame {
	c.t.Helper()
	if f.Event != protocol.EventEncrypted {
		c.t.Fatalf("got plaintext %q (data %s), want an encrypted frame", f.Event, f.Data)
	}
	var sealed ecdh.Sealed
	if err := json.Unmarshal(f.Data, &sealed); err != nil {
		c.t.Fatalf("encrypted data %s: %v", f.Data, err)
	}
	var inner inFrame
	if err := c.key.DecryptJSON(sealed, c.aad, &inner); err != nil {
		c.t.Fatalf("decrypt: %v", err)
	}
	return inner
}

// expectEncrypted reads an encrypted frame and checks the frame inside.
func (c *wsClient) expectEncrypted(event, wantJSON string) {
	c.t.Helper()
	inner := c.decrypt(c.next())
	if inner.Event != event || !jsonEqual(inner.Data, wantJSON) {
		c.t.Fatalf("decrypted %q %s, want %q %s", inner.Event, inner.Data, event, wantJSON)
	}
}

func (c *wsClient) expectError(msg string) {
	c.t.Helper()
	f := c.expect(protocol.EventError)
	var d protocol.ErrorData
	_ = json.Unmarshal(f.Data, &d)
	if d.Message != msg {
		c.t.Fatalf("error message %q, want %q", d.Message, msg)
	}
}

// probe proves that nothing was queued for the client before this point:
// the answer to an invalid frame must be the very next frame, since a
// client's frames leave in order.
func (c *wsClient) probe() {
	c.t.Helper()
	c.sendRaw("probe: not json")
	c.expectError(protocol.ErrMsgInvalidFormat)
}

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

// authenticate sends the authenticate frame with the client's public key.
func (c *wsClient) authenticate(userID string) {
	c.t.Helper()
	c.send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID, "publicKey": c.priv.PublicKeyBase64()})
}

// connected reads "connected" (in plaintext) and derives the key from it.
func (c *wsClient) connected() protocol.ConnectedData {
	c.t.Helper()
	f := c.expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.t.Fatalf("connected data %s: %v", f.Data, err)
	}
	c.id = d.ID
	c.deriveKey(d.ServerPublicKey, d.Salt)
	return d
}

func (c *wsClient) deriveKey(serverPublicKey, salt string) {
	c.t.Helper()
	k, err := ecdh.DeriveKey(c.priv, serverPublicKey, salt)
	if err != nil {
		c.t.Fatalf("derive key from serverPublicKey %q salt %q: %v", serverPublicKey, salt, err)
	}
	c.key = k
}

// connectEncrypted dials, authenticates with a public key and completes
// the handshake.
func (ts *testServer) connectEncrypted(t testing.TB, userID string) *wsClient {
	t.Helper()
	c := ts.dial(t)
	c.authenticate(userID)
	c.connected()
	return c
}

// connectPlain dials and authenticates without a public key.
func (ts *testServer) connectPlain(t testing.TB, userID string) *wsClient {
	t.Helper()
	c := ts.dial(t)
	c.send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID})
	f := c.expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ServerPublicKey != "" || d.Salt != "" {
		t.Fatalf("plain client got handshake data %+v", d)
	}
	c.id = d.ID
	return c
}

func jsonEqual(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// recorder collects callback events.
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
