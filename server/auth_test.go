package server_test

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAuthenticateSuccess(t *testing.T) {
	connected := newRecorder[server.ClientConnectedEvent]()
	ts := startServer(t, nil, server.Options{
		ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
			connected.Add(ev)
			return nil
		},
	})
	c := ts.dial(t)
	before := time.Now().UTC().Add(-time.Second)
	d := c.auth("alice")

	if !uuidV4.MatchString(d.ID) {
		t.Errorf("client id %q is not a UUID v4", d.ID)
	}
	if d.UserID != "alice" {
		t.Errorf("userId %q, want alice", d.UserID)
	}
	at, err := time.Parse(protocol.TimeFormat, d.Time)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("time %q: parse err %v or out of range", d.Time, err)
	}
	if d.ServerPublicKey != "" || d.Salt != "" {
		t.Errorf("unencrypted connected carries key material: %+v", d)
	}

	ev := connected.Wait(t)
	if ev.ClientID != d.ID || ev.UserID != "alice" || ev.Metadata["role"] != "tester" {
		t.Errorf("ClientConnected got %+v", ev)
	}
	info, ok := ts.h.Client(d.ID)
	if !ok {
		t.Fatal("client not indexed")
	}
	if info.State != protocol.StateAuthenticated || info.UserID != "alice" {
		t.Errorf("client info %+v", info)
	}
	wantRooms := []string{d.ID, protocol.DefaultRoom, protocol.DefaultNotificationRoom}
	slices.Sort(wantRooms)
	if !slices.Equal(info.Rooms, wantRooms) {
		t.Errorf("rooms %v, want %v", info.Rooms, wantRooms)
	}
	if got := ts.h.ClientsByUser("alice"); len(got) != 1 || got[0].ID != d.ID {
		t.Errorf("ClientsByUser = %+v", got)
	}
}

func TestAuthenticateRejected(t *testing.T) {
	tests := []struct {
		name      string
		giveToken string
		wantMsg   string
	}{
		{"rejected", "nobody", protocol.ErrMsgAuthFailed},
		{"error", "error", protocol.ErrMsgAuthError},
		{"panic", "panic", protocol.ErrMsgAuthError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disconnected := newRecorder[server.ClientDisconnectedEvent]()
			connected := newRecorder[server.ClientConnectedEvent]()
			ts := startServer(t, nil, server.Options{
				ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
					connected.Add(ev)
					return nil
				},
				ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
					disconnected.Add(ev)
					return nil
				},
			})
			c := ts.dial(t)
			c.Send(protocol.EventAuthenticate, map[string]string{"token": tt.giveToken})
			c.ExpectError(tt.wantMsg)
			c.ExpectClose(protocol.CloseAuthFailed, protocol.ReasonAuthFailed)
			ev := disconnected.Wait(t)
			if ev.Authenticated || ev.UserID != "" {
				t.Errorf("disconnect event %+v", ev)
			}
			if n := len(ts.h.Clients()); n != 0 {
				t.Errorf("%d clients left in the index", n)
			}
			if connected.Count() != 0 {
				t.Error("ClientConnected called for a rejected client")
			}
		})
	}
}

func TestAuthTimeoutWithoutAuthenticate(t *testing.T) {
	ts := startServer(t, nil, server.Options{Config: server.Config{AuthTimeout: 150 * time.Millisecond}})
	c := ts.dial(t)
	c.ExpectClose(protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
}

func TestAuthTimeoutCoversSlowAuthenticate(t *testing.T) {
	ctxErr := newRecorder[error]()
	ts := startServer(t, nil, server.Options{
		Config: server.Config{AuthTimeout: 100 * time.Millisecond},
		Authenticate: func(ctx context.Context, _ server.AuthenticateRequest) (*server.AuthResult, error) {
			<-ctx.Done()
			ctxErr.Add(ctx.Err())
			return &server.AuthResult{UserID: "late"}, nil
		},
	})
	c := ts.dial(t)
	start := time.Now()
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "x"})
	c.ExpectClose(protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
	if err := ctxErr.Wait(t); err == nil {
		t.Error("authenticate context was not cancelled")
	}
	// The authenticate call extends the limit to 3×AuthTimeout.
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("closed after %v, before 3×AuthTimeout", took)
	}
}

func TestClientGoneDuringAuthenticate(t *testing.T) {
	release := make(chan struct{})
	entered := newRecorder[string]()
	connected := newRecorder[server.ClientConnectedEvent]()
	disconnected := newRecorder[server.ClientDisconnectedEvent]()
	rs := redistest.Start(t)
	h, err := server.New(server.Options{
		Redis: rs.Client(t),
		Authenticate: func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
			entered.Add(req.ClientID)
			<-release
			return &server.AuthResult{UserID: "ghost"}, nil
		},
		ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
			connected.Add(ev)
			return nil
		},
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveHelper(t, h)
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "x"})
	entered.Wait(t)
	_ = c.Conn.Close()
	disconnected.Wait(t)
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil { // waits for the authenticate goroutine
		t.Fatal(err)
	}
	if connected.Count() != 0 {
		t.Error("ClientConnected called for a client that left")
	}
	if len(h.ClientsByUser("ghost")) != 0 {
		t.Error("a departed client was indexed by user")
	}
}

// serveHelper configures h and serves it; Shutdown is the test's to call
// (a second Shutdown in cleanup is harmless).
func serveHelper(t *testing.T, h *server.Helper) *testServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Configure(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, h: h}
	ts.srv = newHTTPServer(t, h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = h.Shutdown(ctx)
		ts.srv.Close()
	})
	return ts
}

func TestAlreadyAuthenticated(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "bob")
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:bob"})
	c.ExpectError(protocol.ErrMsgAlreadyAuthenticated)
}

func TestAuthenticateWhileAuthenticating(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, nil, server.Options{
		Authenticate: func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return &server.AuthResult{UserID: "carol"}, nil
		},
	})
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "1"})
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "2"})
	c.ExpectError(protocol.ErrMsgAlreadyAuthenticated)
	c.Send("chat", "hi")
	c.ExpectError(protocol.ErrMsgNotAuthenticated)
	close(release)
	c.Expect(protocol.EventConnected)
}

func TestNotAuthenticated(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.dial(t)
	for _, ev := range []string{"chat", protocol.EventJoin, protocol.EventLeave, protocol.EventConnected, protocol.EventEncrypted} {
		c.Send(ev, map[string]any{"rooms": []string{"a"}})
		c.ExpectError(protocol.ErrMsgNotAuthenticated)
	}
	// A heartbeat gets no answer in any state.
	c.Send(protocol.EventHeartbeat, nil)
	c.Probe()
}

func TestAuthenticateRequestCarriesUpgradeRequest(t *testing.T) {
	got := newRecorder[server.AuthenticateRequest]()
	ts := startServer(t, nil, server.Options{
		Authenticate: func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
			got.Add(req)
			return &server.AuthResult{UserID: "u"}, nil
		},
	})
	c := ts.dialHeader(t, map[string][]string{"X-Tenant": {"acme"}})
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "t"})
	c.Expect(protocol.EventConnected)
	req := got.Wait(t)
	if req.Request == nil || req.Request.Header.Get("X-Tenant") != "acme" {
		t.Errorf("upgrade request not passed: %+v", req.Request)
	}
	if !jsonEqual(req.Data, `{"token":"t"}`) {
		t.Errorf("data %s", req.Data)
	}
}
