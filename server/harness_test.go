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
	"testing"

	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
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
	if os.Getenv(envPresenceChild) != "" {
		// Started by TestPresenceOfAKilledInstanceVanishes; runs until killed.
		if err := presenceChildProcess(); err != nil {
			fmt.Fprintln(os.Stderr, "presence child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests; nothing waits by sleeping.
const waitTimeout = wstest.WaitTimeout

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
// Redis and Authenticate options are filled in; with opts.LocalBus set
// (see startLocal) no Redis is started and rs must be nil.
func startServer(t testing.TB, rs *redistest.Server, opts server.Options) *testServer {
	t.Helper()
	if rs == nil && opts.Redis == nil && !opts.LocalBus && needsNoRedis(opts) {
		// Tests that are not about Redis run on the local bus.
		opts.LocalBus = true
	}
	if rs == nil && !opts.LocalBus {
		rs = redistest.Start(t)
	}
	if opts.Redis == nil && !opts.LocalBus {
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

// startLocal runs a Helper on the local bus: one instance, no Redis. Tests
// that are not about Redis use it.
// needsNoRedis reports whether opts use nothing that only Redis provides.
func needsNoRedis(opts server.Options) bool {
	c := opts.Config
	return c.PresenceRooms == nil && c.HistoryFor == nil && c.RedisRouting == "" && !c.AsyncPublish
}

// startRedisServer is startServer on a real Redis even when the test passes
// none: for tests about Redis behaviour.
func startRedisServer(t testing.TB, opts server.Options) *testServer {
	t.Helper()
	return startServer(t, redistest.Start(t), opts)
}

func startLocal(t testing.TB, opts server.Options) *testServer {
	t.Helper()
	opts.LocalBus = true
	return startServer(t, nil, opts)
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.srv.URL, "http") }

// wsClient is a real WebSocket client (internal/wstest) with the helpers
// these tests add.
type wsClient struct{ *wstest.Client }

type inFrame = wstest.Frame

type recorder[T any] = wstest.Recorder[T]

func newRecorder[T any]() *recorder[T] { return wstest.NewRecorder[T]() }

var (
	jsonEqual  = wstest.JSONEqual
	eventually = wstest.Eventually
)

func (ts *testServer) dial(t testing.TB) *wsClient {
	t.Helper()
	return ts.dialHeader(t, nil)
}

func (ts *testServer) dialHeader(t testing.TB, hdr http.Header) *wsClient {
	t.Helper()
	return &wsClient{wstest.Dial(t, ts.wsURL(), hdr)}
}

// auth authenticates as userID and returns the connected payload.
func (c *wsClient) auth(userID string) protocol.ConnectedData {
	c.T.Helper()
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:" + userID})
	f := c.Expect(protocol.EventConnected)
	var d protocol.ConnectedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.T.Fatalf("connected data %s: %v", f.Data, err)
	}
	c.ID = d.ID
	return d
}

func (ts *testServer) connect(t testing.TB, userID string) *wsClient {
	t.Helper()
	c := ts.dial(t)
	c.auth(userID)
	return c
}

func newHTTPServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	return httptest.NewServer(h)
}
