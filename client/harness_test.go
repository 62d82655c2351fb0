package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

// sharedRedis is one real redis-server for the whole package (tests and
// examples): examples have no testing.TB to start one with.
var sharedRedis *redistest.Server

func TestMain(m *testing.M) {
	srv, err := redistest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedRedis = srv
	code := m.Run()
	srv.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = wstest.WaitTimeout

// tokenAuth accepts {"token":"user:<id>"} and
// {"token":"expiring:<id>:<ms>"} (a session ending <ms> from now);
// "error" fails, anything else is refused.
func tokenAuth(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	switch {
	case strings.HasPrefix(d.Token, "user:"):
		return &server.AuthResult{UserID: strings.TrimPrefix(d.Token, "user:")}, nil
	case strings.HasPrefix(d.Token, "expiring:"):
		parts := strings.Split(d.Token, ":")
		ms, _ := strconv.Atoi(parts[2])
		return &server.AuthResult{UserID: parts[1], ExpiresAt: time.Now().Add(time.Duration(ms) * time.Millisecond)}, nil
	case d.Token == "error":
		return nil, errors.New("token store down")
	}
	return nil, nil
}

// validateRooms allows every room that does not start with "secret".
func validateRooms(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
	var ok []string
	for _, r := range req.Rooms {
		if !strings.HasPrefix(r, "secret") {
			ok = append(ok, r)
		}
	}
	return ok, nil
}

// testServer is a real server.Helper behind a real HTTP server on
// 127.0.0.1, on the shared Redis.
type testServer struct {
	h    *server.Helper
	http *httptest.Server
	rdb  *redis.Client
	// Messages records every frame the message handler got.
	Messages *wstest.Recorder[server.MessageEvent]
}

// newServer starts a Helper configured by opts (Authenticate, ValidateRoom
// and Message filled in when nil) listening on addr ("" for a free port).
// The message handler answers "echo" with Reply, "fail" with a
// ClientError, "boom" with another error, and ignores "slow".
func newServer(addr string, opts server.Options) (*testServer, error) {
	ts := &testServer{Messages: wstest.NewRecorder[server.MessageEvent]()}
	ts.rdb = redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
	opts.Redis = ts.rdb
	if opts.Authenticate == nil {
		opts.Authenticate = tokenAuth
	}
	if opts.ValidateRoom == nil {
		opts.ValidateRoom = validateRooms
	}
	if opts.Message == nil {
		opts.Message = func(ctx context.Context, ev server.MessageEvent) error {
			ts.Messages.Add(ev)
			switch ev.Message.Event {
			case "echo":
				return ts.h.Reply(ctx, ev, "echo", ev.Message.Data)
			case "fail":
				return server.ClientError{Message: "bad input"}
			case "boom":
				return errors.New("database down")
			}
			return nil
		}
	}
	h, err := server.New(opts)
	if err != nil {
		_ = ts.rdb.Close()
		return nil, err
	}
	ts.h = h
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Configure(ctx); err != nil {
		_ = ts.rdb.Close()
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := listen(addr)
	if err != nil {
		_ = h.Shutdown(ctx)
		_ = ts.rdb.Close()
		return nil, err
	}
	ts.http = httptest.NewUnstartedServer(h)
	_ = ts.http.Listener.Close()
	ts.http.Listener = l
	ts.http.Start()
	return ts, nil
}

// listen listens on addr, retrying while a previous server's socket still
// holds it.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(waitTimeout)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop shuts the Helper down (clients get 1001) and the HTTP server.
func (ts *testServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := ts.h.Shutdown(ctx)
	ts.http.Close()
	_ = ts.rdb.Close()
	return err
}

func (ts *testServer) addr() string { return ts.http.Listener.Addr().String() }

func (ts *testServer) url() string { return "ws://" + ts.addr() + "/ws" }

// startServer is newServer for a test, stopped by its cleanup.
func startServer(tb testing.TB, addr string, opts server.Options) *testServer {
	tb.Helper()
	ts, err := newServer(addr, opts)
	if err != nil {
		tb.Fatalf("start server: %v", err)
	}
	var once sync.Once
	tb.Cleanup(func() {
		once.Do(func() {
			if err := ts.stop(); err != nil {
				tb.Errorf("server shutdown: %v", err)
			}
		})
	})
	return ts
}

// token returns Credentials that send {"token": tok}.
func token(tok string) func(context.Context) (any, error) {
	return func(context.Context) (any, error) { return map[string]string{"token": tok}, nil }
}

// dial connects a client for a test, closed by its cleanup.
func dial(tb testing.TB, url string, opts client.Options) *client.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, url, opts)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// ctxT is a context bounded by waitTimeout, cancelled by the test's end.
func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// waitDone waits until c has stopped for good.
func waitDone(tb testing.TB, c *client.Client) {
	tb.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		tb.Fatal("client did not stop")
	}
}

// wantClose checks that err is a *client.CloseError with code and reason.
func wantClose(tb testing.TB, err error, code int, reason string) *client.CloseError {
	tb.Helper()
	var ce *client.CloseError
	if !errors.As(err, &ce) {
		tb.Fatalf("error %v (%T), want a *client.CloseError %d", err, err, code)
	}
	if ce.Code != code || ce.Reason != reason {
		tb.Fatalf("closed %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
	return ce
}

// fast is a reconnect policy for tests.
var fast = client.Reconnect{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
