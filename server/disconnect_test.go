package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

func TestHelperDisconnectClosesALocalClient(t *testing.T) {
	gone := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, server.Options{
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			gone.Add(ev)
			return nil
		},
	})
	c := ts.connect(t, "u1")
	// A last message sent just before the close still arrives, then the
	// close with the application's code and reason.
	if err := ts.h.SendToClient(c.ID, "bye", "banned"); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.Disconnect(c.ID, server.Disconnect{Code: 4100, Reason: "Banned"}); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("bye", `"banned"`)
	c.ExpectClose(4100, "Banned")
	if ev := gone.Wait(t); ev.ClientID != c.ID || ev.UserID != "u1" || !ev.Authenticated {
		t.Fatalf("disconnect callback %+v", ev)
	}

	// The zero Disconnect is 4005 "Disconnected".
	c2 := ts.connect(t, "u2")
	if err := ts.h.Disconnect(c2.ID, server.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	c2.ExpectClose(protocol.CloseDisconnected, protocol.ReasonDisconnected)

	for _, tt := range []struct {
		name string
		give server.Disconnect
	}{
		{"RFC code", server.Disconnect{Code: 1000, Reason: "x"}},
		{"above 4999", server.Disconnect{Code: 5000}},
		{"reason too long", server.Disconnect{Code: 4000, Reason: strings.Repeat("x", 124)}},
	} {
		if err := ts.h.Disconnect("whoever", tt.give); !errors.Is(err, server.ErrInvalidDisconnect) {
			t.Errorf("%s: err %v, want ErrInvalidDisconnect", tt.name, err)
		}
	}
	if err := ts.h.Disconnect("nobody", server.Disconnect{}); !errors.Is(err, server.ErrClientNotFound) {
		t.Errorf("unknown client: %v", err)
	}
	// A Disconnect is an error value that code can return and match.
	var d server.Disconnect
	if err := error(server.DisconnectSessionExpired); !errors.As(err, &d) || d.Code != 4006 {
		t.Errorf("Disconnect as error: %v", err)
	}
}

func TestDisconnectUserAndClientAcrossInstances(t *testing.T) {
	for _, modes := range [][2]string{
		{server.RoutingInterest, server.RoutingInterest},
		{server.RoutingPattern, server.RoutingInterest},
	} {
		t.Run(modes[0]+"+"+modes[1], func(t *testing.T) {
			f := newFleetRouting(t, modes[0], modes[1])
			ctx := context.Background()
			// u1 has a session on each instance; A ends both.
			if err := f.a.h.DisconnectUser(ctx, "u1", server.Disconnect{Code: 4010, Reason: "Logged out"}); err != nil {
				t.Fatal(err)
			}
			f.a1.ExpectClose(4010, "Logged out")
			f.b1.ExpectClose(4010, "Logged out")
			// One client on the other instance, by id.
			if err := f.a.h.DisconnectClient(ctx, f.b2.ID, server.Disconnect{}); err != nil {
				t.Fatal(err)
			}
			f.b2.ExpectClose(protocol.CloseDisconnected, protocol.ReasonDisconnected)
			// Nobody else was touched.
			f.a2.Probe()
			eventually(t, "control messages counted", func() bool { return f.b.h.Stats().ControlReceived == 2 })
		})
	}
}

func TestEmitterDisconnectsAndMalformedControlIsDropped(t *testing.T) {
	rs := redistest.Start(t)
	ts := startServer(t, rs, server.Options{})
	c1 := ts.connect(t, "u1")
	c2 := ts.connect(t, "u2")
	rdb := rs.Client(t)
	ctx := context.Background()

	for _, bad := range []string{
		`not json`,
		`{"serverId":"x","type":"disconnect","user":"u1","code":1000,"reason":"rfc code"}`,
		`{"serverId":"x","type":"disconnect","user":"u1","client":"` + c2.ID + `","code":4005}`,
		`{"serverId":"x","type":"reboot"}`,
		`{"type":"disconnect","user":"u1","code":4005}`,
	} {
		publishRaw(t, rdb, protocol.ChannelControl, bad)
	}
	eventually(t, "malformed control counted", func() bool { return ts.h.Stats().ControlMalformed == 5 })
	c1.Probe()
	c2.Probe()

	em, err := emitter.New(emitter.Options{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if err := em.DisconnectUser(ctx, "u1", protocol.Disconnect{Code: 4020, Reason: "Password changed"}); err != nil {
		t.Fatal(err)
	}
	c1.ExpectClose(4020, "Password changed")
	if err := em.DisconnectClient(ctx, c2.ID, protocol.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	c2.ExpectClose(protocol.CloseDisconnected, protocol.ReasonDisconnected)
	if err := em.DisconnectUser(ctx, "u1", protocol.Disconnect{Code: 1000}); !errors.Is(err, emitter.ErrInvalidDisconnect) {
		t.Errorf("emitter accepted code 1000: %v", err)
	}
}

func TestPublishDuringOutageSaysWhatWasDeliveredLocally(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	f.rs.Kill()
	eventually(t, "outage noticed", func() bool { return f.a.h.Health(ctx) != nil })

	err := f.a.h.PublishToRoom(ctx, "shared", "during", 1)
	var pe *server.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, server.ErrNotReady) || pe.Local != 1 {
		t.Fatalf("PublishToRoom during outage: %v (%#v)", err, pe)
	}
	if !strings.Contains(err.Error(), "1 local client") || !strings.Contains(err.Error(), "RetryPublish") {
		t.Errorf("error text does not say what happened: %q", err)
	}
	f.a2.ExpectData("during", "1") // the local member has it
	// Retrying while Redis is down fails the same way and delivers nothing.
	if err := pe.RetryPublish(ctx); !errors.Is(err, server.ErrNotReady) {
		t.Fatalf("RetryPublish during outage: %v", err)
	}
	for _, call := range []func() error{
		func() error { return f.a.h.PublishToUser(ctx, "u1", "during", 2) },
		func() error { return f.a.h.Send(ctx, "", "during", 2) },
		func() error { return f.a.h.DisconnectUser(ctx, "nobody", server.Disconnect{}) },
	} {
		if err := call(); !errors.As(err, new(*server.PublishError)) || !errors.Is(err, server.ErrNotReady) {
			t.Errorf("publish during outage: %v", err)
		}
	}
	f.a1.ExpectData("during", "2") // PublishToUser, local session
	f.a1.ExpectData("during", "2") // Send broadcast
	f.a2.ExpectData("during", "2")

	f.rs.Restart(t)
	eventually(t, "resubscribed", func() bool { return f.a.h.Health(ctx) == nil && f.b.h.Health(ctx) == nil })
	// The retry reaches the other instance only: no duplicate locally.
	if err := pe.RetryPublish(ctx); err != nil {
		t.Fatal(err)
	}
	f.b2.ExpectData("during", "1")
	f.probeAll()
}

func TestShutdownReportsClosedAfterwards(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	ctx := context.Background()
	if err := ts.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.Health(ctx); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Health after Shutdown: %v, want ErrClosed", err)
	}
	if err := ts.h.PublishToRoom(ctx, "r", "e", nil); !errors.Is(err, server.ErrClosed) {
		t.Errorf("publish after Shutdown: %v, want ErrClosed", err)
	}
}
