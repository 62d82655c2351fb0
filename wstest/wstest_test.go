package wstest_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startApp runs a server.Helper behind httptest with the given Redis (nil:
// the local bus) and returns its WebSocket URL.
func startApp(t *testing.T, r *wstest.Redis, connected *wstest.Recorder[string]) (string, *server.Helper) {
	t.Helper()
	opts := server.Options{
		Authenticate: func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
			var d struct{ Token string }
			_ = json.Unmarshal(req.Data, &d)
			if user, ok := strings.CutPrefix(d.Token, "t-"); ok {
				return &server.AuthResult{UserID: user}, nil
			}
			return nil, nil
		},
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil },
		ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
			connected.Add(ev.UserID)
			return nil
		},
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			return server.FromContext(ctx).Reply(ctx, ev, "echo", ev.Message.Data)
		},
	}
	if r != nil {
		opts.Redis = r.Client(t)
	} else {
		opts.LocalBus = true
	}
	h, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), h
}

// TestKitAgainstARealServer is the kit used as an app's test would use it,
// with a real redis-server and with the local bus.
func TestKitAgainstARealServer(t *testing.T) {
	for _, withRedis := range []bool{true, false} {
		name := map[bool]string{true: "redis", false: "local bus"}[withRedis]
		t.Run(name, func(t *testing.T) {
			var r *wstest.Redis
			if withRedis {
				r = wstest.StartRedis(t)
			}
			connected := wstest.NewRecorder[string]()
			url, h := startApp(t, r, connected)

			c, d := wstest.DialAuth(t, url, map[string]string{"token": "t-alice"})
			if d.UserID != "alice" || c.ID == "" || c.ID != d.ID {
				t.Fatalf("connected %+v, client id %q", d, c.ID)
			}
			if got := connected.Wait(t); got != "alice" {
				t.Fatalf("ClientConnected for %q", got)
			}
			c.SendID(protocol.EventJoin, "1", map[string]any{"rooms": []string{"lobby"}})
			if f := c.Expect(protocol.EventAck); f.ID != "1" {
				t.Fatalf("ack %+v", f)
			}
			c.SendID("ping", "2", map[string]int{"n": 1})
			if f := c.Expect("echo"); f.ID != "2" || !wstest.JSONEqual(f.Data, `{"n":1}`) {
				t.Fatalf("reply %+v", f)
			}
			if err := h.PublishToRoom(context.Background(), "lobby", "news", "hi"); err != nil {
				t.Fatal(err)
			}
			c.ExpectData("news", `"hi"`)
			c.Probe() // nothing else was queued
			wstest.Eventually(t, "one user", func() bool { return h.Stats().Users == 1 })

			bad := wstest.Dial(t, url, nil)
			bad.Send(protocol.EventAuthenticate, map[string]string{"token": "nope"})
			bad.ExpectError(protocol.ErrMsgAuthFailed)
			bad.ExpectClose(protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
		})
	}
}

func TestRedisKillAndRestart(t *testing.T) {
	r := wstest.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.URL(), "redis://"+r.Addr()) {
		t.Fatalf("URL %q, Addr %q", r.URL(), r.Addr())
	}
	r.Kill()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded after Kill")
	}
	r.Restart(t)
	wstest.Eventually(t, "redis back", func() bool { return rdb.Ping(ctx).Err() == nil })
	if n, _ := rdb.Exists(ctx, "k").Result(); n != 0 {
		t.Fatal("data survived a restart without persistence")
	}
}
