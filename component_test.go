package wscomponent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = 5 * time.Second

// events records what happened, in order, across goroutines.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

// loopbackEcho serves an Echo on 127.0.0.1:0 for one app. Its lifecycle
// hook is what a real app appends for Echo: Serve in OnStart, Shutdown in
// OnStop.
type loopbackEcho struct {
	events *events
	mu     sync.Mutex
	addr   string
}

// hook returns the Echo's start/stop hook.
func (s *loopbackEcho) hook(e *echo.Echo) fx.Hook {
	done := make(chan struct{})
	return fx.Hook{
		OnStart: func(context.Context) error {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.addr = l.Addr().String()
			s.mu.Unlock()
			go func() {
				defer close(done)
				_ = e.Server.Serve(l)
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			if s.events != nil {
				s.events.add("echo stop")
			}
			err := e.Shutdown(ctx)
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
			return err
		},
	}
}

// provide returns the constructor of *echo.Echo that appends the hook, so
// that it is appended before the component's (which depends on Echo).
func (s *loopbackEcho) provide() fx.Option {
	return fx.Provide(func(lc fx.Lifecycle) *echo.Echo {
		e := echo.New()
		lc.Append(s.hook(e))
		return e
	})
}

func (s *loopbackEcho) url(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "ws://" + s.addr + path
}

// tokens is the app's own service the authenticate handler depends on.
type tokens map[string]string

func newTokens() tokens { return tokens{"t-alice": "alice", "t-bob": "bob"} }

type authData struct {
	Token string `json:"token"`
}

// newAuthenticate is the "production" authenticate handler: it accepts the
// known tokens and rejects anything else.
func newAuthenticate(tk tokens) server.AuthenticateFunc {
	return func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
		var d authData
		if err := json.Unmarshal(req.Data, &d); err != nil {
			return nil, nil
		}
		if user, ok := tk[d.Token]; ok {
			return &server.AuthResult{UserID: user}, nil
		}
		return nil, nil
	}
}

// baseOptions is the wiring every test app shares: Echo on loopback, a
// real Redis, the token service and the component.
func baseOptions(srv *loopbackEcho, rdb *redis.Client) fx.Option {
	return fx.Options(
		srv.provide(),
		fx.Provide(newTokens),
		wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }),
		wscomponent.Module(),
	)
}

// startApp starts an fx app and stops it when the test ends (stopping an
// app twice is harmless). It returns the helper the component built.
func startApp(t *testing.T, opts ...fx.Option) (*fxtest.App, *server.Helper) {
	t.Helper()
	var h *server.Helper
	app := fxtest.New(t, append(opts, fx.Populate(&h))...)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return app, h
}

// The root package's tests drive clients with the public test kit
// (wstest); these wrappers keep the tests short.

// dial connects a WebSocket client; it is closed when the test ends.
func dial(t *testing.T, url string) *wstest.Client { return wstest.Dial(t, url, nil) }

func send(t *testing.T, c *wstest.Client, event string, data any) {
	t.Helper()
	c.Send(event, data)
}

// read returns the next frame, failing the test after wstest.WaitTimeout.
func read(t *testing.T, c *wstest.Client) wstest.Frame {
	t.Helper()
	return c.Next()
}

// readClose reads until the connection ends and returns its close error.
func readClose(t *testing.T, c *wstest.Client) *websocket.CloseError {
	t.Helper()
	ce, err := readUntilClosed(c)
	if err != nil {
		t.Fatal(err)
	}
	return ce
}

// readUntilClosed reads (answering the close handshake, as a browser does)
// until the connection ends or waitTimeout passes.
func readUntilClosed(c *wstest.Client) (*websocket.CloseError, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := c.Conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			return nil, fmt.Errorf("read ended with %w, want a close frame", err)
		}
		return ce, nil
	}
}

// dialClient connects the Go client (package client) with token, without
// reconnecting: the first close stops it, and Err says which close it was.
func dialClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{
		Credentials: func(context.Context) (any, error) { return authData{Token: token}, nil },
		Reconnect:   client.Reconnect{MaxAttempts: client.Off},
	})
	if err != nil {
		t.Fatalf("Dial with %s: %v", token, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// authenticate sends authenticate with token and returns the "connected"
// payload.
func authenticate(t *testing.T, c *wstest.Client, token string) protocol.ConnectedData {
	t.Helper()
	c.Send(protocol.EventAuthenticate, authData{Token: token})
	var d protocol.ConnectedData
	if err := json.Unmarshal(c.Expect(protocol.EventConnected).Data, &d); err != nil {
		t.Fatal(err)
	}
	c.ID = d.ID
	return d
}

// expectAuthRejected checks the reply to a rejected authenticate.
func expectAuthRejected(t *testing.T, c *wstest.Client, token string) {
	t.Helper()
	c.Send(protocol.EventAuthenticate, authData{Token: token})
	c.ExpectError(protocol.ErrMsgAuthFailed)
	c.ExpectClose(protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wstest.Eventually(t, what, cond)
}

func expectEvent(t *testing.T, c *wstest.Client, event string, wantData string) {
	t.Helper()
	m := c.Next()
	if m.Event != event || (string(m.Data) != wantData && !(wantData == "" && (m.Data == nil || string(m.Data) == "null"))) {
		t.Fatalf("got %q %s, want %q %s", m.Event, m.Data, event, wantData)
	}
}

func TestAuthenticateAndJoinRoom(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	_, h := startApp(t,
		baseOptions(srv, rdb),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.ProvideValidateRoomHandler(func() server.ValidateRoomFunc {
			return func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
				var ok []string
				for _, r := range req.Rooms {
					if strings.HasPrefix(r, "chat-") {
						ok = append(ok, r)
					}
				}
				return ok, nil
			}
		}),
	)

	c := dial(t, srv.url("/ws"))
	before := time.Now().UTC().Add(-time.Second)
	got := authenticate(t, c, "t-alice")
	if got.ID == "" || got.UserID != "alice" {
		t.Fatalf("connected = %+v, want an id and userId alice", got)
	}
	at, err := time.Parse(protocol.TimeFormat, got.Time)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("connected time %q (%v): want ISO-8601 UTC of now", got.Time, err)
	}
	if info, ok := h.Client(got.ID); !ok || info.UserID != "alice" {
		t.Fatalf("helper does not know client %s as alice: %+v", got.ID, info)
	}

	send(t, c, protocol.EventJoin, protocol.RoomsData{Rooms: []string{"chat-1", "admin"}})
	inRoom := func(room string) bool {
		for _, ci := range h.ClientsInRoom(room) {
			if ci.ID == got.ID {
				return true
			}
		}
		return false
	}
	eventually(t, "the join of chat-1", func() bool { return inRoom("chat-1") })
	if inRoom("admin") {
		t.Fatal("joined admin, which the validate-room handler refused")
	}

	if err := h.SendToRoom("chat-1", "chat.message", map[string]string{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "chat.message", `{"text":"hi"}`)
}

// notifier is an application service that sends through the helper it got
// in its constructor.
type notifier struct{ ws *server.Helper }

func newNotifier(ws *server.Helper) *notifier { return &notifier{ws: ws} }

func (n *notifier) notify(user, text string) error {
	return n.ws.SendToUser(user, "notice", map[string]string{"text": text})
}

func TestServiceInjectsHelper(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	var (
		n     *notifier
		named *server.Helper
	)
	_, h := startApp(t,
		baseOptions(srv, rdb),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		fx.Provide(newNotifier),
		fx.Populate(&n),
		fx.Invoke(fx.Annotate(func(h *server.Helper) { named = h },
			fx.ParamTags(`name:"`+wscomponent.KeyInstance+`"`))),
	)
	if n.ws != h || named != h {
		t.Fatalf("unnamed %p, named %p, populated %p: want one helper", n.ws, named, h)
	}

	c := dial(t, srv.url("/ws"))
	authenticate(t, c, "t-alice")
	if err := n.notify("alice", "hello"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "notice", `{"text":"hello"}`)
}

func TestInstancesShareRedis(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srvA, srvB := &loopbackEcho{}, &loopbackEcho{}
	_, _ = startApp(t, baseOptions(srvA, rdb), wscomponent.ProvideAuthenticateHandler(newAuthenticate))
	_, hB := startApp(t, baseOptions(srvB, rdb), wscomponent.ProvideAuthenticateHandler(newAuthenticate))

	c := dial(t, srvA.url("/ws"))
	authenticate(t, c, "t-bob")
	// The subscriptions are live once Start has returned: no wait here.
	if err := hB.PublishToUser(context.Background(), "bob", "remote", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, "remote", `{"n":1}`)
}

// database stands for a production dependency a test app does not have.
type database struct{}

func TestOverrideAuthenticateHandler(t *testing.T) {
	t.Run("decorate", func(t *testing.T) {
		rdb := redistest.Start(t).Client(t)
		srv := &loopbackEcho{}
		startApp(t,
			baseOptions(srv, rdb),
			wscomponent.ProvideAuthenticateHandler(newAuthenticate),
			// The test lets a magic token in and defers to production
			// for everything else.
			wscomponent.DecorateAuthenticateHandler(func(next server.AuthenticateFunc, tk tokens) server.AuthenticateFunc {
				return func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
					var d authData
					if json.Unmarshal(req.Data, &d) == nil && d.Token == "magic" {
						return &server.AuthResult{UserID: "tester"}, nil
					}
					return next(ctx, req)
				}
			}),
		)
		if got := authenticate(t, dial(t, srv.url("/ws")), "magic"); got.UserID != "tester" {
			t.Fatalf("magic token: userId %q, want tester", got.UserID)
		}
		if got := authenticate(t, dial(t, srv.url("/ws")), "t-bob"); got.UserID != "bob" {
			t.Fatalf("production token: userId %q, want bob", got.UserID)
		}
		expectAuthRejected(t, dial(t, srv.url("/ws")), "nobody")
	})

	t.Run("replace", func(t *testing.T) {
		rdb := redistest.Start(t).Client(t)
		srv := &loopbackEcho{}
		startApp(t,
			baseOptions(srv, rdb),
			// Production needs a database this test does not provide;
			// the replacement means it is never built.
			wscomponent.ProvideAuthenticateHandler(func(*database) server.AuthenticateFunc {
				panic("the production handler must not be built")
			}),
			wscomponent.ReplaceAuthenticateHandler(func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
				return nil, nil // the test's handler refuses everyone
			}),
		)
		expectAuthRejected(t, dial(t, srv.url("/ws")), "t-alice")
	})
}

func TestOverrideServerOptions(t *testing.T) {
	tests := []struct {
		name     string
		give     fx.Option
		wantPath string
		wantID   string
	}{
		{
			name: "decorate keeps the other fields",
			give: fx.Options(
				wscomponent.SupplyServerOptions(wscomponent.ServerOptions{Path: "/prod", Identifier: "chat"}),
				wscomponent.DecorateServerOptions(func(o wscomponent.ServerOptions) wscomponent.ServerOptions {
					o.Path = "/test-ws"
					return o
				}),
			),
			wantPath: "/test-ws",
			wantID:   "chat",
		},
		{
			name: "replace drops the bound options",
			give: fx.Options(
				wscomponent.SupplyServerOptions(wscomponent.ServerOptions{Path: "/prod", Identifier: "chat"}),
				wscomponent.ReplaceServerOptions(wscomponent.ServerOptions{Path: "/replaced"}),
			),
			wantPath: "/replaced",
			wantID:   protocol.DefaultIdentifier,
		},
		{
			name: "decorate options nobody bound",
			give: wscomponent.DecorateServerOptions(func(o wscomponent.ServerOptions) wscomponent.ServerOptions {
				o.Path = "/decorated"
				return o
			}),
			wantPath: "/decorated",
			wantID:   protocol.DefaultIdentifier,
		},
		{
			name:     "defaults",
			give:     fx.Options(),
			wantPath: protocol.DefaultPath,
			wantID:   protocol.DefaultIdentifier,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client(t)
			srv := &loopbackEcho{}
			_, h := startApp(t, baseOptions(srv, rdb),
				wscomponent.ProvideAuthenticateHandler(newAuthenticate), tt.give)
			if cfg := h.Config(); cfg.Path != tt.wantPath || cfg.Identifier != tt.wantID {
				t.Fatalf("path %q identifier %q, want %q %q", cfg.Path, cfg.Identifier, tt.wantPath, tt.wantID)
			}
			authenticate(t, dial(t, srv.url(tt.wantPath)), "t-alice")
		})
	}
}

func TestLoggerIsUsed(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	core, logs := observer.New(zap.InfoLevel)
	srv := &loopbackEcho{}
	startApp(t,
		baseOptions(srv, rdb),
		fx.Supply(zap.New(core)),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{Identifier: "chat-ws"}),
	)
	got := logs.FilterMessage("websocket server configured").All()
	if len(got) != 1 || got[0].LoggerName != "chat-ws" {
		t.Fatalf("logs %+v: want one 'websocket server configured' from logger chat-ws", logs.All())
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// unusedRedis is a client that no startup-error test gets to use.
func unusedRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestStartupErrors(t *testing.T) {
	auth := wscomponent.ProvideAuthenticateHandler(newAuthenticate)
	handshake := wscomponent.ProvideHandshakeHandler(func() server.HandshakeFunc {
		return func(context.Context, server.HandshakeRequest) (*server.HandshakeResult, error) { return nil, nil }
	})
	transformer := wscomponent.ProvideOutboundTransformer(func() server.OutboundTransformer {
		return func(context.Context, server.OutboundRequest) (*server.OutboundResult, error) { return nil, nil }
	})
	encrypted := wscomponent.SupplyServerOptions(wscomponent.ServerOptions{RequireEncryption: true})
	echoOpt := fx.Provide(echo.New)

	tests := []struct {
		name      string
		noRedis   bool
		give      []fx.Option
		want      []string
		wantNot   []string
		wantIsErr []error
	}{
		{
			name:      "no redis connection",
			noRedis:   true,
			give:      []fx.Option{echoOpt, auth},
			want:      []string{"wscomponent: no Redis connection bound: provide one with wscomponent.ProvideRedisConnection(...)"},
			wantNot:   []string{"authenticate"},
			wantIsErr: []error{wscomponent.ErrNoRedisConnection},
		},
		{
			name:      "no authenticate handler",
			give:      []fx.Option{echoOpt},
			want:      []string{"wscomponent: no authenticate handler bound: provide one with wscomponent.ProvideAuthenticateHandler(...)"},
			wantNot:   []string{"Redis"},
			wantIsErr: []error{wscomponent.ErrNoAuthenticateHandler},
		},
		{
			name:    "neither",
			noRedis: true,
			give:    []fx.Option{echoOpt},
			want:    []string{"ProvideRedisConnection(...)", "ProvideAuthenticateHandler(...)"},
		},
		{
			name: "encryption without handshake or transformer",
			give: []fx.Option{echoOpt, auth, encrypted},
			want: []string{
				"wscomponent: ServerOptions.RequireEncryption is set but no handshake handler is bound: provide one with wscomponent.ProvideHandshakeHandler(...)",
				"wscomponent: ServerOptions.RequireEncryption is set but no outbound transformer is bound: provide one with wscomponent.ProvideOutboundTransformer(...)",
			},
		},
		{
			name:      "encryption without transformer",
			give:      []fx.Option{echoOpt, auth, encrypted, handshake},
			want:      []string{"no outbound transformer is bound"},
			wantNot:   []string{"handshake handler"},
			wantIsErr: []error{wscomponent.ErrNoOutboundTransformer},
		},
		{
			name:      "encryption without handshake",
			give:      []fx.Option{echoOpt, auth, encrypted, transformer},
			want:      []string{"no handshake handler is bound"},
			wantNot:   []string{"outbound transformer"},
			wantIsErr: []error{wscomponent.ErrNoHandshakeHandler},
		},
		{
			name:      "no echo",
			give:      []fx.Option{auth},
			want:      []string{"wscomponent: no *echo.Echo in the app: provide one (e.g. fx.Provide(echo.New))"},
			wantIsErr: []error{wscomponent.ErrNoEcho},
		},
		{
			name: "required binding whose constructor lacks a dependency",
			give: []fx.Option{echoOpt, wscomponent.ProvideAuthenticateHandler(func(*database, tokens) server.AuthenticateFunc {
				return nil
			})},
			want:    []string{"wscomponent: the authenticate handler bound with wscomponent.ProvideAuthenticateHandler could not be built", "*wscomponent_test.database"},
			wantNot: []string{"no authenticate handler bound"},
		},
		{
			name: "optional binding whose constructor lacks a dependency",
			give: []fx.Option{echoOpt, auth, wscomponent.ProvideValidateRoomHandler(func(*database) server.ValidateRoomFunc {
				return nil
			})},
			want: []string{"wscomponent: the validate-room handler bound with wscomponent.ProvideValidateRoomHandler could not be built"},
		},
		{
			name: "decorating a binding that is not bound",
			give: []fx.Option{echoOpt, auth, wscomponent.DecorateValidateRoomHandler(func(old server.ValidateRoomFunc) server.ValidateRoomFunc {
				return old
			})},
			want: []string{"wscomponent: DecorateValidateRoomHandler: no validate-room handler is bound to decorate: " +
				"bind one with wscomponent.ProvideValidateRoomHandler(...), or set it with wscomponent.ReplaceValidateRoomHandler(...)"},
		},
		{
			name: "decorating a binding whose constructor lacks a dependency",
			give: []fx.Option{echoOpt,
				wscomponent.ProvideAuthenticateHandler(func(*database) server.AuthenticateFunc { return nil }),
				wscomponent.DecorateAuthenticateHandler(func(old server.AuthenticateFunc) server.AuthenticateFunc { return old }),
			},
			want: []string{"wscomponent: the authenticate handler bound with wscomponent.ProvideAuthenticateHandler could not be built"},
		},
		{
			name: "binding a key twice",
			give: []fx.Option{echoOpt, auth, auth},
			want: []string{wscomponent.KeyAuthenticateHandler, "already provided"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]fx.Option{fx.NopLogger, fx.Provide(newTokens), wscomponent.Module()}, tt.give...)
			if !tt.noRedis {
				rdb := unusedRedis(t)
				opts = append(opts, wscomponent.ProvideRedisConnection(func() redis.UniversalClient { return rdb }))
			}
			app := fx.New(opts...)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := app.Start(ctx)
			if err == nil {
				_ = app.Stop(ctx)
				t.Fatal("app started")
			}
			// fx.New already failed; Start returns that error. (errors.Is
			// cannot compare them: some dig error types are not comparable.)
			if app.Err() == nil || err.Error() != app.Err().Error() {
				t.Errorf("Start returned %v, want the fx.New error %v", err, app.Err())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ncontains %q", err, w)
				}
			}
			for _, target := range tt.wantIsErr {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
		})
	}
}

func TestStartFailsWhenRedisUnreachable(t *testing.T) {
	addr := closedAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	srv := &loopbackEcho{}
	app := fx.New(fx.NopLogger,
		baseOptions(srv, rdb),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{RedisTimeout: 500 * time.Millisecond}),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitTimeout)
	defer cancel()
	start := time.Now()
	err := app.Start(ctx)
	took := time.Since(start)
	if err == nil {
		_ = app.Stop(ctx)
		t.Fatal("app started without Redis")
	}
	if took > 3*time.Second {
		t.Errorf("start failed after %v, want about RedisTimeout (500ms)", took)
	}
	for _, w := range []string{"wscomponent: start: check that Redis is reachable or raise ServerOptions.RedisTimeout (500ms)", addr} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestStartTimeoutShorterThanRedisTimeout(t *testing.T) {
	addr := closedAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	srv := &loopbackEcho{}
	app := fx.New(fx.NopLogger,
		baseOptions(srv, rdb),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := app.Start(ctx)
	if err == nil {
		_ = app.Stop(context.Background())
		t.Fatal("app started without Redis")
	}
	for _, w := range []string{"less than ServerOptions.RedisTimeout (30s)", "raise fx.StartTimeout", addr} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestStopClosesClients(t *testing.T) {
	tests := []struct {
		name string
		// echoFirst: Echo's hook is appended before the component's, so
		// fx stops the component first.
		echoFirst bool
	}{
		{name: "echo hook from its constructor", echoFirst: true},
		{name: "echo hook from a top-level invoke", echoFirst: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client(t)
			ev := &events{}
			srv := &loopbackEcho{events: ev}
			opts := []fx.Option{
				fx.Provide(newTokens),
				wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }),
				wscomponent.ProvideAuthenticateHandler(newAuthenticate),
				wscomponent.ProvideClientDisconnectedHandler(func() server.ClientDisconnectedFunc {
					return func(_ context.Context, e server.ClientDisconnectedEvent) error {
						ev.add("disconnected " + e.UserID)
						return nil
					}
				}),
				wscomponent.Module(),
			}
			if tt.echoFirst {
				opts = append(opts, srv.provide())
			} else {
				opts = append(opts, fx.Provide(echo.New),
					fx.Invoke(func(lc fx.Lifecycle, e *echo.Echo) { lc.Append(srv.hook(e)) }))
			}
			app, h := startApp(t, opts...)
			clients := []*client.Client{dialClient(t, srv.url("/ws"), "t-alice"), dialClient(t, srv.url("/ws"), "t-bob")}

			app.RequireStop()

			for _, c := range clients {
				select {
				case <-c.Done():
				case <-time.After(waitTimeout):
					t.Fatal("a client is still connected after stop")
				}
				var ce *client.CloseError
				if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseGoingAway || ce.Reason != protocol.ReasonShutdown {
					t.Errorf("closed with %v, want %d %q", c.Err(), protocol.CloseGoingAway, protocol.ReasonShutdown)
				}
			}
			if err := h.Health(context.Background()); err == nil {
				t.Error("Health after stop = nil, want an error")
			}
			if n := h.Stats().Connections; n != 0 {
				t.Errorf("%d connections left after stop", n)
			}
			got := ev.snapshot()
			if len(got) != 3 {
				t.Fatalf("events %q: want two disconnects and the echo stop", got)
			}
			if tt.echoFirst && got[2] != "echo stop" {
				t.Errorf("events %q: the component must stop before Echo", got)
			}
		})
	}
}
