package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

func TestLocalDelivery(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	a1 := ts.connect(t, "ann")
	a2 := ts.connect(t, "ann")
	b := ts.connect(t, "ben")
	pending := ts.dial(t) // connected, never authenticated

	if err := ts.h.SendToClient(b.ID, "direct", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	b.ExpectData("direct", `{"n":1}`)

	if err := ts.h.SendToUser("ann", "user-msg", "hi"); err != nil {
		t.Fatal(err)
	}
	a1.ExpectData("user-msg", `"hi"`)
	a2.ExpectData("user-msg", `"hi"`)

	if err := ts.h.SendToRoom(protocol.DefaultRoom, "room-msg", 2, a1.ID); err != nil {
		t.Fatal(err)
	}
	a2.ExpectData("room-msg", "2")
	b.ExpectData("room-msg", "2")

	if err := ts.h.Broadcast("all", nil, b.ID); err != nil {
		t.Fatal(err)
	}
	a1.Expect("all")
	a2.Expect("all")

	if err := ts.h.SendToClient(pending.ID, "x", nil); err != server.ErrClientNotFound {
		t.Errorf("SendToClient with empty id: %v", err)
	}
	for _, c := range []*wsClient{a1, a2, b, pending} {
		c.Probe() // nothing else arrived: not the excluded, not the unauthenticated
	}
	if err := ts.h.SendToClient("missing", "x", nil); err != server.ErrClientNotFound {
		t.Errorf("unknown client: %v", err)
	}
	if err := ts.h.Broadcast("", nil); err != server.ErrEmptyEvent {
		t.Errorf("empty event: %v", err)
	}
	if err := ts.h.Broadcast("bad", func() {}); err == nil {
		t.Error("unencodable data accepted")
	}
}

func TestApplicationSendsSkipUnauthenticatedClients(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	waiting := ts.dial(t)
	waiting.Probe()
	ids := ts.h.Clients()
	if len(ids) != 1 {
		t.Fatalf("%d clients", len(ids))
	}
	if err := ts.h.SendToClient(ids[0].ID, "early", nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.Broadcast("early", nil); err != nil {
		t.Fatal(err)
	}
	waiting.Probe()
	d := waiting.auth("late")
	if d.ID != ids[0].ID {
		t.Errorf("id changed: %s vs %s", d.ID, ids[0].ID)
	}
}

func TestRawJSONDataIsSentAsIs(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "raw")
	if err := ts.h.SendToClient(c.ID, "raw", json.RawMessage(`{"a":[1,2]}`)); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("raw", `{"a":[1,2]}`)
	if err := ts.h.SendToClient(c.ID, "raw", json.RawMessage(`{broken`)); err == nil {
		t.Error("invalid raw JSON accepted")
	}
}

func TestSendRoutesLocallyAndPublishes(t *testing.T) {
	ts := startRedisServer(t, server.Options{})
	c := ts.connect(t, "sam")
	sub := ts.redis.Client(t).PSubscribe(context.Background(), "ws:*")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		dest        string
		wantChannel string
		wantType    protocol.MessageType
		wantLocal   bool
	}{
		{"", protocol.ChannelBroadcast, protocol.TypeBroadcast, true},
		{c.ID, protocol.ChannelClient(c.ID), protocol.TypeClient, true},
		{protocol.DefaultRoom, protocol.ChannelRoom(protocol.DefaultRoom), protocol.TypeRoom, true},
		{"elsewhere", protocol.ChannelRoom("elsewhere"), protocol.TypeRoom, false},
	}
	for _, tt := range tests {
		if err := ts.h.Send(ctx, tt.dest, "routed", map[string]string{"to": tt.dest}); err != nil {
			t.Fatal(err)
		}
		if tt.wantLocal {
			c.ExpectData("routed", `{"to":"`+tt.dest+`"}`)
		}
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Channel != tt.wantChannel {
			t.Errorf("dest %q published on %q, want %q", tt.dest, msg.Channel, tt.wantChannel)
		}
		var env protocol.Envelope
		if err := json.Unmarshal([]byte(msg.Payload), &env); err != nil {
			t.Fatal(err)
		}
		wantTarget := tt.dest
		if env.ServerID != ts.h.ServerID() || env.Type != tt.wantType || env.Target != wantTarget || env.Event != "routed" {
			t.Errorf("envelope %+v", env)
		}
	}
	c.Probe()
}
