package encryption_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; nothing waits by sleeping.
const waitTimeout = wstest.WaitTimeout

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
	*wstest.Client
	priv *ecdh.PrivateKey
	key  *ecdh.Key
	aad  []byte
}

type inFrame = wstest.Frame

func (ts *testServer) dial(t testing.TB) *wsClient {
	t.Helper()
	priv, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &wsClient{Client: wstest.Dial(t, ts.wsURL(), nil), priv: priv}
}

// sendEncrypted seals {"event","data"} with the client's key and sends it
// as an "encrypted" frame.
func (c *wsClient) sendEncrypted(event string, data any) {
	c.T.Helper()
	sealed, err := c.key.EncryptJSON(map[string]any{"event": event, "data": data}, c.aad)
	if err != nil {
		c.T.Fatal(err)
	}
	c.Send(protocol.EventEncrypted, sealed)
}

// decrypt opens an "encrypted" frame and returns the frame inside.
func (c *wsClient) decrypt(f inFrame) inFrame {
	c.T.Helper()
	if f.Event != protocol.EventEncrypted {
		c.T.Fatalf("got plaintext %q (data %s), want an encrypted frame", f.Event, f.Data)
	}
	var sealed ecdh.Sealed
	if err := json.Unmarshal(f.Data, &sealed); err != nil {
		c.T.Fatalf("encrypted data %s: %v", f.Data, err)
	}
	var inner inFrame
	if err := c.key.DecryptJSON(sealed, c.aad, &inner); err != nil {
		c.T.Fatalf("decrypt: %v", err)
	}
	return inner
}

// expectEncrypted reads an encrypted frame and checks the frame inside.
func (c *wsClient) expectEncrypted(event, wantJSON string) {
	c.T.Helper()
	inner := c.decrypt(c.Next())
	if inner.Event != event || !jsonEqual(inner.Data, wantJSON) {
		c.T.Fatalf("decrypted %q %s, want %q %s", inner.Event, inner.Data, event, wantJSON)
	}
}

// authenticate sends the authenticate frame with the client's public key.
func (c *wsClient) authenticate(userID string) {
	c.T.Helper()
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID, "publicKey": c.priv.PublicKeyBase64()})
}

// connected reads "connected" (in plaintext) and derives the key from it.
func (c *wsClient) connected() protocol.ConnectedData {
	c.T.Helper()
	f := c.Expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.T.Fatalf("connected data %s: %v", f.Data, err)
	}
	c.ID = d.ID
	c.deriveKey(d.ServerPublicKey, d.Salt)
	return d
}

func (c *wsClient) deriveKey(serverPublicKey, salt string) {
	c.T.Helper()
	k, err := ecdh.DeriveKey(c.priv, serverPublicKey, salt)
	if err != nil {
		c.T.Fatalf("derive key from serverPublicKey %q salt %q: %v", serverPublicKey, salt, err)
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
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID})
	f := c.Expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ServerPublicKey != "" || d.Salt != "" {
		t.Fatalf("plain client got handshake data %+v", d)
	}
	c.ID = d.ID
	return c
}

type recorder[T any] = wstest.Recorder[T]

func newRecorder[T any]() *recorder[T] { return wstest.NewRecorder[T]() }

var (
	jsonEqual  = wstest.JSONEqual
	eventually = wstest.Eventually
)
