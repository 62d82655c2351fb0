package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

func TestDialAuthenticates(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	before := time.Now().Add(-time.Second)
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice")})
	got := c.Connected()
	if got.ID == "" || got.UserID != "alice" {
		t.Fatalf("connected %+v, want an id and user alice", got)
	}
	if got.Time.Before(before) || got.Time.After(time.Now().Add(time.Second)) {
		t.Fatalf("connected time %v is not now", got.Time)
	}
	if _, ok := ts.h.Client(got.ID); !ok {
		t.Fatalf("server does not know client %s", got.ID)
	}
}

func TestDialRejected(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	tests := []struct {
		give    string
		wantMsg string
	}{
		{give: "nobody", wantMsg: protocol.ErrMsgAuthFailed},
		{give: "error", wantMsg: protocol.ErrMsgAuthError},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			c, err := client.Dial(ctxT(t), ts.url(), client.Options{Credentials: token(tt.give)})
			if c != nil {
				_ = c.Close()
				t.Fatal("Dial succeeded, want a refusal")
			}
			ce := wantClose(t, err, protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
			if ce.Message != tt.wantMsg {
				t.Fatalf("message %q, want %q", ce.Message, tt.wantMsg)
			}
		})
	}
}

func TestDialCredentialsError(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	boom := errors.New("vault sealed")
	_, err := client.Dial(ctxT(t), ts.url(), client.Options{
		Credentials: func(context.Context) (any, error) { return nil, boom },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Dial: %v, want %v", err, boom)
	}
}

func TestJoinAckAndLeave(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	events := wstest.NewRecorder[client.Frame]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnEvent: events.Add})
	ack, err := c.Join(ctxT(t), "lobby", "secret-vault", "ws:internal")
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	wantRefused := []client.Refused{
		{Room: "secret-vault", Reason: protocol.RefusedNotAllowed},
		{Room: "ws:internal", Reason: protocol.RefusedInvalidName},
	}
	slices.SortFunc(ack.Refused, func(a, b client.Refused) int { return compare(a.Room, b.Room) })
	if ack.Event != "join" || !slices.Equal(ack.Rooms, []string{"lobby"}) || !slices.Equal(ack.Refused, wantRefused) {
		t.Fatalf("ack %+v, want lobby joined and %v refused", ack, wantRefused)
	}
	if got := c.Rooms(); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("Rooms() = %v, want [lobby]", got)
	}
	// The ack comes once the room is live: a publish now reaches the client.
	if err := ts.h.PublishToRoom(ctxT(t), "lobby", "news", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if f := events.Wait(t); f.Event != "news" || !wstest.JSONEqual(f.Data, `{"n":1}`) {
		t.Fatalf("got %+v, want news {n:1}", f)
	}

	ack, err = c.Leave(ctxT(t), "lobby", "nowhere")
	if err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if !slices.Equal(ack.Rooms, []string{"lobby"}) || len(ack.Refused) != 1 || ack.Refused[0].Reason != protocol.RefusedNotMember {
		t.Fatalf("leave ack %+v", ack)
	}
	if got := c.Rooms(); len(got) != 0 {
		t.Fatalf("Rooms() after Leave = %v", got)
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRequestReply(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), RequestTimeout: 300 * time.Millisecond})
	tests := []struct {
		give      string
		wantData  string
		wantError string // ServerError message
		wantTO    bool
	}{
		{give: "echo", wantData: `{"text":"hi"}`},
		{give: "fail", wantError: "bad input"},
		{give: "boom", wantError: protocol.ErrMsgInternal},
		{give: "slow", wantTO: true}, // the handler never answers
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			f, err := c.Request(ctxT(t), tt.give, map[string]string{"text": "hi"})
			switch {
			case tt.wantTO:
				if !errors.Is(err, client.ErrTimeout) {
					t.Fatalf("err %v, want ErrTimeout", err)
				}
			case tt.wantError != "":
				var se *client.ServerError
				if !errors.As(err, &se) || se.Message != tt.wantError {
					t.Fatalf("err %v, want ServerError %q", err, tt.wantError)
				}
				if se.Internal() != (tt.wantError == protocol.ErrMsgInternal) {
					t.Fatalf("Internal() = %v", se.Internal())
				}
				if f.ID == "" {
					t.Fatal("error frame without the request id")
				}
			default:
				if err != nil {
					t.Fatalf("Request: %v", err)
				}
				if f.Event != "echo" || f.ID == "" || !wstest.JSONEqual(f.Data, tt.wantData) {
					t.Fatalf("reply %+v, want echo %s with an id", f, tt.wantData)
				}
			}
		})
	}
	// The server saw each request with its id.
	for range tests {
		if ev := ts.Messages.Wait(t); ev.Message.ID == "" {
			t.Fatalf("frame %+v reached the server without an id", ev.Message)
		}
	}
}

func TestSendFireAndForget(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice")})
	if err := c.Send("note", map[string]int{"n": 7}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	ev := ts.Messages.Wait(t)
	if ev.Message.Event != "note" || ev.Message.ID != "" || !wstest.JSONEqual(ev.Message.Data, `{"n":7}`) || ev.UserID != "alice" {
		t.Fatalf("server got %+v", ev)
	}
}

func TestHeartbeat(t *testing.T) {
	cfg := server.Config{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 200 * time.Millisecond}
	ts := startServer(t, "", server.Options{Config: cfg})

	t.Run("keeps the session", func(t *testing.T) {
		lost := wstest.NewRecorder[client.Disconnected]()
		c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"),
			HeartbeatInterval: 50 * time.Millisecond, OnDisconnect: lost.Add})
		time.Sleep(5 * cfg.HeartbeatTimeout) // the property is "still there after a while"
		if _, err := c.Request(ctxT(t), "echo", nil); err != nil {
			t.Fatalf("Request after %v: %v", 5*cfg.HeartbeatTimeout, err)
		}
		if n := lost.Count(); n != 0 {
			t.Fatalf("%d disconnects, want none", n)
		}
	})
	t.Run("without heartbeats the server closes 4002", func(t *testing.T) {
		c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"),
			HeartbeatInterval: client.Off, Reconnect: client.Reconnect{MaxAttempts: client.Off}})
		waitDone(t, c)
		wantClose(t, c.Err(), protocol.CloseHeartbeatTimeout, protocol.ReasonHeartbeatTimeout)
	})
}

func TestSessionRefresh(t *testing.T) {
	cfg := server.Config{RefreshWindow: time.Second}
	ts := startServer(t, "", server.Options{Config: cfg})

	t.Run("automatic refresh keeps the session", func(t *testing.T) {
		var calls atomic.Int32
		creds := func(context.Context) (any, error) {
			if calls.Add(1) == 1 {
				return map[string]string{"token": "expiring:bob:1500"}, nil // session-expiring after 500ms
			}
			return map[string]string{"token": "expiring:bob:60000"}, nil
		}
		expiring := wstest.NewRecorder[time.Time]()
		refreshed := wstest.NewRecorder[client.Refreshed]()
		lost := wstest.NewRecorder[client.Disconnected]()
		c := dial(t, ts.url(), client.Options{Credentials: creds,
			OnSessionExpiring: expiring.Add, OnRefresh: refreshed.Add, OnDisconnect: lost.Add})
		first := expiring.Wait(t)
		if time.Until(first) > 1500*time.Millisecond {
			t.Fatalf("session-expiring at %v, want within 1.5s", first)
		}
		r := refreshed.Wait(t)
		if r.Err != nil || time.Until(r.ExpiresAt) < 50*time.Second {
			t.Fatalf("refreshed %+v, want a new expiry about 60s away", r)
		}
		time.Sleep(time.Until(first) + 200*time.Millisecond) // past the first expiry
		if _, err := c.Request(ctxT(t), "echo", nil); err != nil {
			t.Fatalf("Request after the first expiry: %v", err)
		}
		if n := lost.Count(); n != 0 {
			t.Fatalf("%d disconnects, want none", n)
		}
	})
	t.Run("refused refresh: Refresh failed, then 4006", func(t *testing.T) {
		var calls atomic.Int32
		creds := func(context.Context) (any, error) {
			if calls.Add(1) == 1 {
				return map[string]string{"token": "expiring:bob:1200"}, nil
			}
			return map[string]string{"token": "expiring:mallory:60000"}, nil // another user
		}
		refreshed := wstest.NewRecorder[client.Refreshed]()
		c := dial(t, ts.url(), client.Options{Credentials: creds, OnRefresh: refreshed.Add,
			Reconnect: client.Reconnect{MaxAttempts: client.Off}})
		r := refreshed.Wait(t)
		var se *client.ServerError
		if !errors.As(r.Err, &se) || se.Message != protocol.ErrMsgRefreshFailed {
			t.Fatalf("refresh outcome %+v, want Refresh failed", r)
		}
		waitDone(t, c)
		wantClose(t, c.Err(), protocol.CloseSessionExpired, protocol.ReasonSessionExpired)
	})
	t.Run("manual Refresh", func(t *testing.T) {
		c := dial(t, ts.url(), client.Options{Credentials: token("expiring:carol:60000"), AutoRefresh: client.Bool(false)})
		at, err := c.Refresh(ctxT(t))
		if err != nil || time.Until(at) < 50*time.Second {
			t.Fatalf("Refresh = %v, %v", at, err)
		}
	})
}

func TestServerDisconnectStops(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	lost := wstest.NewRecorder[client.Disconnected]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), Reconnect: fast, OnDisconnect: lost.Add})
	if err := ts.h.Disconnect(c.Connected().ID, server.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	wantClose(t, c.Err(), protocol.CloseDisconnected, protocol.ReasonDisconnected)
	d := lost.Wait(t)
	if d.Reconnecting {
		t.Fatalf("OnDisconnect %+v, want Reconnecting false", d)
	}
	if _, err := c.Request(ctxT(t), "echo", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Request after the stop: %v, want ErrClosed", err)
	}
	time.Sleep(10 * fast.Max) // several backoffs: nothing may come back
	if n := len(ts.h.Clients()); n != 0 {
		t.Fatalf("server has %d clients, want none: the client reconnected", n)
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	addr := ts.addr() // the restarted server listens on the same port
	events := wstest.NewRecorder[client.Frame]()
	lost := wstest.NewRecorder[client.Disconnected]()
	back := wstest.NewRecorder[client.Reconnected]()
	var dials atomic.Int32
	creds := func(context.Context) (any, error) {
		dials.Add(1)
		return map[string]string{"token": "user:alice"}, nil
	}
	c := dial(t, ts.url(), client.Options{Credentials: creds, Reconnect: fast,
		OnEvent: events.Add, OnDisconnect: lost.Add, OnReconnect: back.Add})
	if _, err := c.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	first := c.Connected()

	if err := ts.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	d := lost.Wait(t)
	wantClose(t, d.Err, protocol.CloseGoingAway, protocol.ReasonShutdown)
	if !d.Reconnecting {
		t.Fatal("OnDisconnect says no reconnect after 1001")
	}
	ts2 := startServer(t, addr, server.Options{})

	r := back.Wait(t)
	if r.Connected.ID == first.ID || r.Connected.UserID != "alice" {
		t.Fatalf("reconnected as %+v, first session %+v", r.Connected, first)
	}
	if !slices.Equal(r.Rejoin.Rooms, []string{"lobby"}) || !slices.Equal(r.Unrecovered, []string{"lobby"}) {
		t.Fatalf("rejoin %+v unrecovered %v, want lobby rejoined (not recovered: no history)", r.Rejoin, r.Unrecovered)
	}
	if n := dials.Load(); n < 2 {
		t.Fatalf("Credentials called %d times, want once per connection", n)
	}
	if got := c.Connected(); got.ID != r.Connected.ID {
		t.Fatalf("Connected() = %s, want the new session %s", got.ID, r.Connected.ID)
	}
	if err := ts2.h.PublishToRoom(ctxT(t), "lobby", "after-restart", "hello"); err != nil {
		t.Fatal(err)
	}
	if f := events.Wait(t); f.Event != "after-restart" {
		t.Fatalf("got %+v, want after-restart", f)
	}
	if f, err := c.Request(ctxT(t), "echo", "x"); err != nil || f.Event != "echo" {
		t.Fatalf("Request on the new session: %+v %v", f, err)
	}
}

func TestReconnectGivesUp(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	lost := wstest.NewRecorder[client.Disconnected]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnDisconnect: lost.Add,
		Reconnect: client.Reconnect{Min: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}})
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if !errors.Is(c.Err(), client.ErrReconnectGaveUp) {
		t.Fatalf("Err() = %v, want ErrReconnectGaveUp", c.Err())
	}
	if d := lost.Wait(t); !d.Reconnecting {
		t.Fatalf("first OnDisconnect %+v, want Reconnecting", d)
	}
	if d := lost.Wait(t); d.Reconnecting || !errors.Is(d.Err, client.ErrReconnectGaveUp) {
		t.Fatalf("last OnDisconnect %+v, want the give-up", d)
	}
}

func TestPresence(t *testing.T) {
	cfg := server.Config{PresenceRooms: func(r string) bool { return r == "team-presence" }, PresenceEvents: true,
		PresenceRefresh: 200 * time.Millisecond}
	ts := startServer(t, "", server.Options{Config: cfg})
	notices := wstest.NewRecorder[client.PresenceEvent]()
	a := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnPresence: notices.Add})
	b := dial(t, ts.url(), client.Options{Credentials: token("user:bob")})
	for _, c := range []*client.Client{a, b} {
		if _, err := c.Join(ctxT(t), "team-presence", "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	for {
		n := notices.Wait(t)
		if n.Action == "join" && n.UserID == "bob" && n.Room == "team-presence" {
			break
		}
	}
	p, err := a.Presence(ctxT(t), "team-presence")
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	var users []string
	for _, e := range p.Clients {
		users = append(users, e.UserID)
		if e.JoinedAt.IsZero() || e.ServerID == "" {
			t.Fatalf("entry %+v", e)
		}
	}
	slices.Sort(users)
	if p.Room != "team-presence" || p.Users != 2 || !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("presence %+v", p)
	}
	_, err = a.Presence(ctxT(t), "lobby")
	var ref client.Refused
	if !errors.As(err, &ref) || ref.Room != "lobby" || ref.Reason != protocol.RefusedNotMember {
		t.Fatalf("presence of a plain room: %v, want Refused not a member", err)
	}
}

func TestSlowHandlerCostsAReconnect(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	release := make(chan struct{})
	var handled atomic.Int32
	lost := wstest.NewRecorder[client.Disconnected]()
	back := wstest.NewRecorder[client.Reconnected]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), Reconnect: fast, EventQueue: 2,
		OnEvent: func(client.Frame) {
			if handled.Add(1) == 1 {
				<-release
			}
		},
		OnDisconnect: lost.Add, OnReconnect: back.Add})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the Close that dial registered, which waits for the handler
	first := c.Connected().ID
	for i := range 10 {
		err := ts.h.SendToClient(first, "tick", i)
		if errors.Is(err, server.ErrClientNotFound) && i > 0 {
			break // already dropped for the overflow
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The reader did not wait for the stuck handler: it dropped the
	// connection and the client came back with a new session.
	wstest.Eventually(t, "a new session", func() bool {
		cl := ts.h.Clients()
		return len(cl) == 1 && cl[0].ID != first
	})
	unblock()
	d := lost.Wait(t)
	if !errors.Is(d.Err, client.ErrEventQueueFull) || !d.Reconnecting {
		t.Fatalf("OnDisconnect %+v, want ErrEventQueueFull and a reconnect", d)
	}
	back.Wait(t)
	// The stuck frame and the EventQueue frames queued behind it (one
	// fewer if the overflow came before the handler took the first);
	// nothing after the overflow.
	if n := handled.Load(); n < 2 || n > 3 {
		t.Fatalf("handled %d frames, want 2 or 3", n)
	}
}

func TestCloseFromHandler(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	closed := make(chan error, 1)
	var c *client.Client
	ready := make(chan struct{})
	c = dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnEvent: func(client.Frame) {
		<-ready
		closed <- c.Close()
	}})
	close(ready)
	if err := ts.h.SendToClient(c.Connected().ID, "bye", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close from a handler did not return")
	}
	waitDone(t, c)
	if !errors.Is(c.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}

func TestGapNotice(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	gaps := wstest.NewRecorder[client.Gap]()
	events := wstest.NewRecorder[client.Frame]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnGap: gaps.Add, OnEvent: events.Add})
	from := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	to := from.Add(116 * time.Millisecond)
	// The server's GapNotice (issue 14) is not built yet; the frame it will
	// send is sent by hand.
	if err := ts.h.SendToClient(c.Connected().ID, "gap", map[string]string{
		"from": from.Format(time.RFC3339Nano), "to": to.Format(time.RFC3339Nano)}); err != nil {
		t.Fatal(err)
	}
	g := gaps.Wait(t)
	if !g.From.Equal(from) || !g.To.Equal(to) {
		t.Fatalf("gap %+v, want %v–%v", g, from, to)
	}
	if n := events.Count(); n != 0 {
		t.Fatalf("gap also reached OnEvent (%d frames)", n)
	}
}

func TestRequestsFailFastWhenClosed(t *testing.T) {
	ts := startServer(t, "", server.Options{})
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice")})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := c.Send("x", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send: %v", err)
	}
	if _, err := c.Join(ctxT(t), "lobby"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Join: %v", err)
	}
	wstest.Eventually(t, "the server to see the close", func() bool { return len(ts.h.Clients()) == 0 })
}

func TestFrameDecode(t *testing.T) {
	f := client.Frame{Event: "x", Data: json.RawMessage(`{"a":1}`)}
	var v struct{ A int }
	if err := f.Decode(&v); err != nil || v.A != 1 {
		t.Fatalf("Decode: %+v %v", v, err)
	}
}
