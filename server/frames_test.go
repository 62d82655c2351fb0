package server_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestInvalidFramesGetAnErrorAndKeepTheConnection(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{"not json", "hello"},
		{"null", "null"},
		{"array", `[{"event":"chat"}]`},
		{"number", "42"},
		{"string", `"authenticate"`},
		{"numeric event", `{"event":5}`},
		{"object event", `{"event":{"a":1}}`},
		{"truncated", `{"event":"chat"`},
	}
	ts := startServer(t, nil, server.Options{})
	for _, authenticated := range []bool{false, true} {
		c := ts.dial(t)
		if authenticated {
			c.auth("frames")
		}
		for _, tt := range tests {
			c.SendRaw(tt.give)
			c.ExpectError(protocol.ErrMsgInvalidFormat)
		}
		// Still usable afterwards.
		if !authenticated {
			c.auth("frames")
		}
		c.Send(protocol.EventAuthenticate, nil)
		c.ExpectError(protocol.ErrMsgAlreadyAuthenticated)
	}
}

func TestFramesWithoutEventAreDropped(t *testing.T) {
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, server.Options{
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	})
	c := ts.connect(t, "drop")
	for _, give := range []string{`{}`, `{"data":1}`, `{"event":""}`, `{"event":null}`} {
		c.SendRaw(give)
	}
	c.Probe()
	if handled.Count() != 0 {
		t.Errorf("message handler saw %d dropped frames", handled.Count())
	}
}

func TestBinaryFramesAreReadAsText(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.dial(t)
	_ = c.Conn.WriteMessage(websocket.BinaryMessage, []byte(`{"event":"authenticate","data":{"token":"user:bin"}}`))
	c.Expect(protocol.EventConnected)
}

func TestMessageHandlerGetsApplicationEventsOnly(t *testing.T) {
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, server.Options{
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	})
	c := ts.connect(t, "dave")
	for _, ev := range []string{protocol.EventConnected, protocol.EventDisconnect, protocol.EventError, protocol.EventEncrypted, protocol.EventHeartbeat} {
		c.Send(ev, map[string]string{"x": "y"})
	}
	c.SendRaw(`{"event":"chat","data":{"text":"hi"},"id":"m1"}`)
	ev := handled.Wait(t)
	if ev.Message.Event != "chat" || ev.ClientID != c.ID || ev.UserID != "dave" || ev.Message.ID != "m1" {
		t.Fatalf("handler got %+v", ev)
	}
	if !jsonEqual(ev.Message.Data, `{"text":"hi"}`) {
		t.Errorf("data %s", ev.Message.Data)
	}
	c.Probe()
	if handled.Count() != 1 {
		t.Errorf("handler called %d times, want 1", handled.Count())
	}
}

func TestMessageHandlerFailuresKeepTheConnection(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		Message: func(_ context.Context, ev server.MessageEvent) error {
			if ev.Message.Event == "boom" {
				panic("handler exploded")
			}
			return errors.New("handler failed")
		},
	})
	c := ts.connect(t, "erin")
	c.Send("boom", nil)
	c.Send("fail", nil)
	c.Probe()
	if err := ts.h.SendToClient(c.ID, "still", 1); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("still", "1")
	if st := ts.h.Stats(); st.CallbackPanics != 1 || st.CallbackErrors < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientConnectedPanicDoesNotFailAuth(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		ClientConnected: func(context.Context, server.ClientConnectedEvent) error { panic("connected exploded") },
	})
	c := ts.connect(t, "fay")
	eventually(t, "panic counted", func() bool { return ts.h.Stats().CallbackPanics == 1 })
	if err := ts.h.SendToClient(c.ID, "ok", nil); err != nil {
		t.Fatal(err)
	}
	c.Expect("ok")
}

func TestHeartbeatTimeout(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{
		HeartbeatInterval: 30 * time.Millisecond,
		HeartbeatTimeout:  150 * time.Millisecond,
	}})
	c := ts.connect(t, "sleepy")
	c.ExpectClose(protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
	eventually(t, "index cleared", func() bool { return len(ts.h.Clients()) == 0 })
}

func TestHeartbeatUpdatesLastActivity(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "beat")
	before, _ := ts.h.Client(c.ID)
	c.Send(protocol.EventHeartbeat, nil)
	c.Probe()
	after, _ := ts.h.Client(c.ID)
	if !after.LastActivity.After(before.LastActivity) {
		t.Errorf("last activity %v not after %v", after.LastActivity, before.LastActivity)
	}
}

func TestDisconnectCleansEveryIndex(t *testing.T) {
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		ValidateRoom: allowAll,
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	c := ts.connect(t, "gina")
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"r1", "r2"}})
	eventually(t, "joined", func() bool { return len(ts.h.ClientsInRoom("r2")) == 1 })
	_ = c.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	ev := disconnected.Wait(t)
	if ev.ClientID != c.ID || ev.UserID != "gina" || !ev.Authenticated {
		t.Errorf("disconnect event %+v", ev)
	}
	if n := len(ts.h.Clients()); n != 0 {
		t.Errorf("%d clients left", n)
	}
	if r := ts.h.Rooms(); len(r) != 0 {
		t.Errorf("rooms left: %v", r)
	}
	if u := ts.h.ClientsByUser("gina"); len(u) != 0 {
		t.Errorf("user index left: %v", u)
	}
	st := ts.h.Stats()
	if st.Users != 0 || st.Rooms != 0 || st.Connections != 0 {
		t.Errorf("stats after disconnect %+v", st)
	}
	if disconnected.Count() != 1 {
		t.Errorf("disconnect callback ran %d times", disconnected.Count())
	}
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{MaxPayloadLength: 1024}})
	c := ts.connect(t, "big")
	c.SendRaw(`{"event":"chat","data":"` + strings.Repeat("x", 2048) + `"}`)
	c.ExpectClose(websocket.CloseMessageTooBig, "")
}

func TestOriginPolicy(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    int
	}{
		{"no origin", nil, "", http.StatusSwitchingProtocols},
		{"same origin", nil, "SAME", http.StatusSwitchingProtocols},
		{"cross origin refused", nil, "http://evil.example", http.StatusForbidden},
		{"allow-listed", []string{"http://app.example"}, "http://app.example", http.StatusSwitchingProtocols},
		{"not on list", []string{"http://app.example"}, "http://evil.example", http.StatusForbidden},
		{"wildcard", []string{"*"}, "http://any.example", http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, nil, server.Options{Config: server.Config{AllowedOrigins: tt.allowed}})
			hdr := http.Header{}
			switch tt.origin {
			case "":
			case "SAME":
				hdr.Set("Origin", ts.srv.URL)
			default:
				hdr.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{HandshakeTimeout: waitTimeout}
			conn, resp, err := d.Dial(ts.wsURL(), hdr)
			if conn != nil {
				_ = conn.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestNotAcceptingBeforeConfigureAndAfterShutdown(t *testing.T) {
	rsClient := startRedisServer(t, server.Options{}).redis.Client(t)
	h, err := server.New(server.Options{Redis: rsClient, Authenticate: tokenAuth})
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(t, h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before Configure: err %v resp %v", err, resp)
	}
	// Shutdown before Configure, twice: harmless.
	ctx := context.Background()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(ctx); !errors.Is(err, server.ErrClosed) {
		t.Fatalf("Configure after Shutdown: %v", err)
	}
}

func TestShutdownClosesClientsWith1001(t *testing.T) {
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	a := ts.connect(t, "a")
	b := ts.dial(t) // not authenticated yet
	b.Probe()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		done <- ts.h.Shutdown(ctx)
	}()
	a.ExpectClose(protocol.CloseGoingAway, protocol.ReasonShutdown)
	b.ExpectClose(protocol.CloseGoingAway, protocol.ReasonShutdown)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if disconnected.Count() != 2 {
		t.Errorf("disconnect callbacks: %d, want 2", disconnected.Count())
	}
	if n := len(ts.h.Clients()); n != 0 {
		t.Errorf("%d clients after shutdown", n)
	}
	if err := ts.h.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := ts.h.Health(context.Background()); err == nil {
		t.Error("healthy after shutdown")
	}
}

func TestConfigureTwiceIsHarmless(t *testing.T) {
	ts := startRedisServer(t, server.Options{})
	if err := ts.h.Configure(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := ts.connect(t, "once")
	// A message from another instance arrives once, not once per Configure.
	other := startServer(t, ts.redis, server.Options{})
	if err := other.h.PublishToUser(context.Background(), "once", "hello", 1); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("hello", "1")
	c.Probe()
}

func allowAll(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
	return req.Rooms, nil
}

func TestInvalidUTF8TextClosesWith1007(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "utf")
	_ = c.Conn.WriteMessage(websocket.TextMessage, []byte("{\"event\":\"chat\",\"data\":\"\xff\xfe\"}"))
	c.ExpectClose(websocket.CloseInvalidFramePayloadData, protocol.ReasonInvalidUTF8)
}

func TestInvalidUTF8BinaryGetsAnError(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "utf")
	_ = c.Conn.WriteMessage(websocket.BinaryMessage, []byte("{\"event\":\"chat\",\"data\":\"\xff\"}"))
	c.ExpectError(protocol.ErrMsgInvalidFormat)
}

func TestServerSendsPings(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{IdleTimeout: 200 * time.Millisecond}})
	c := ts.connect(t, "pinged")
	pinged := make(chan struct{}, 16)
	c.Conn.SetPingHandler(func(data string) error {
		pinged <- struct{}{}
		return c.Conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() { // control frames are processed while reading
		for {
			if _, _, err := c.Conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for range 3 { // several idle periods pass; the pongs keep it open
		select {
		case <-pinged:
		case <-time.After(waitTimeout):
			t.Fatal("no ping from the server")
		}
	}
	if _, ok := ts.h.Client(c.ID); !ok {
		t.Fatal("answering pings did not keep the connection")
	}
}

func TestIdleTimeoutWithoutPings(t *testing.T) {
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		Config: server.Config{IdleTimeout: 150 * time.Millisecond, SendPings: server.Bool(false)},
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	c := ts.connect(t, "quiet")
	if ev := disconnected.Wait(t); ev.ClientID != c.ID {
		t.Fatalf("disconnected %+v", ev)
	}
}

func TestConcurrentShutdownWaitsForTheFirst(t *testing.T) {
	release := make(chan struct{})
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			<-release
			disconnected.Add(ev)
			return nil
		},
	})
	ts.connect(t, "c")
	first := make(chan error, 1)
	go func() { first <- ts.h.Shutdown(context.Background()) }()
	eventually(t, "shutdown started", func() bool { return ts.h.Health(context.Background()) != nil })
	second := make(chan error, 1)
	go func() { second <- ts.h.Shutdown(context.Background()) }()
	select {
	case err := <-second:
		t.Fatalf("second Shutdown returned %v before the first finished", err)
	case <-time.After(50 * time.Millisecond): // asserting it is still waiting
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if disconnected.Count() != 1 {
		t.Errorf("%d disconnect callbacks", disconnected.Count())
	}
}

func TestCallbacksCanReachTheHelper(t *testing.T) {
	var ts *testServer
	ts = startServer(t, nil, server.Options{
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			h := server.FromContext(ctx)
			if h != ts.h {
				return errors.New("no helper in the callback context")
			}
			return h.SendToClient(ev.ClientID, "echo", ev.Message.Data)
		},
	})
	c := ts.connect(t, "echoer")
	c.Send("say", "hi")
	c.ExpectData("echo", `"hi"`)
	if server.FromContext(context.Background()) != nil {
		t.Error("helper from an unrelated context")
	}
}

func TestPeerCloseIsEchoed(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "bye")
	if err := c.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "leaving")); err != nil {
		t.Fatal(err)
	}
	c.ExpectClose(4321, "")
}

func TestPerMessageDeflateClients(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{PerMessageDeflate: true}})
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: true}
	conn, resp, err := d.Dial(ts.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(got, "permessage-deflate") {
		t.Fatalf("compression not negotiated: %q", got)
	}
	compressed := &wsClient{&wstest.Client{T: t, Conn: conn}}
	t.Cleanup(func() { _ = conn.Close() })
	compressed.auth("zip")
	plain := ts.connect(t, "plain")
	big := strings.Repeat("abc", 5000)
	for i := range 3 {
		if err := ts.h.Broadcast("big", map[string]any{"i": i, "s": big}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*wsClient{compressed, plain} {
		for i := range 3 {
			c.ExpectData("big", `{"i":`+strconv.Itoa(i)+`,"s":"`+big+`"}`)
		}
		c.Probe()
	}
	_ = compressed.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	compressed.ExpectClose(websocket.CloseNormalClosure, "")
}

func TestDirectWriteAfterTheWriteDeadlinePassed(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{WriteTimeout: 50 * time.Millisecond}})
	c := ts.connect(t, "quiet")
	// "connected" went out through the writer, which set a write deadline
	// of 50ms; once it has passed, a reply must still arrive.
	deadlinePassed := time.Now().Add(100 * time.Millisecond)
	eventually(t, "the writer's deadline to pass", func() bool { return time.Now().After(deadlinePassed) })
	if err := ts.h.SendToClient(c.ID, "late", 1); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("late", "1")
	if err := ts.h.SendToClient(c.ID, "again", 2); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("again", "2")
}
