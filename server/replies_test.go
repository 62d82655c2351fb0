package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// expectAck reads the next frame, checks it is the ack of id and returns
// its payload.
func (c *wsClient) expectAck(id string) protocol.AckData {
	c.T.Helper()
	f := c.Expect(protocol.EventAck)
	if f.ID != id {
		c.T.Fatalf("ack id %q, want %q", f.ID, id)
	}
	var d protocol.AckData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		c.T.Fatalf("ack data %s: %v", f.Data, err)
	}
	return d
}

// onlyRooms allows the rooms it names.
func onlyRooms(allowed ...string) server.ValidateRoomFunc {
	return func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
		return allowed, nil
	}
}

func TestJoinAndLeaveWithIDAreAcknowledged(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		ValidateRoom: onlyRooms("a", "b", "c"),
		Config:       server.Config{MaxRoomsPerClient: 5}, // own id + 2 default rooms + 2
	})
	c := ts.connect(t, "u1")
	long := strings.Repeat("x", protocol.DefaultMaxRoomNameLength+1)
	c.SendID(protocol.EventJoin, "j1", map[string]any{"rooms": []string{"a", "secret", "ws:internal", long, "b", "c", "a"}})
	got := c.expectAck("j1")
	want := protocol.AckData{
		Event: protocol.EventJoin,
		Rooms: []string{"a", "b"},
		Refused: []protocol.RefusedRoom{
			{Room: "ws:internal", Reason: protocol.RefusedInvalidName},
			{Room: long, Reason: protocol.RefusedInvalidName},
			{Room: "secret", Reason: protocol.RefusedNotAllowed},
			{Room: "c", Reason: protocol.RefusedTooManyRooms},
		},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("join ack\n got %+v\nwant %+v", got, want)
	}
	if ci, _ := ts.h.Client(c.ID); !contains(ci.Rooms, "a") || !contains(ci.Rooms, "b") || contains(ci.Rooms, "c") {
		t.Fatalf("rooms after join: %v", ci.Rooms)
	}

	// Another client's id is not a room anyone may join.
	other := ts.connect(t, "u2")
	c.SendID(protocol.EventJoin, "j2", map[string]any{"rooms": []string{other.ID}})
	if got := c.expectAck("j2"); len(got.Rooms) != 0 || len(got.Refused) != 1 || got.Refused[0].Reason == "" {
		t.Fatalf("join of another client's id: %+v", got)
	}

	c.SendID(protocol.EventLeave, "l1", map[string]any{"rooms": []string{"a", "never", c.ID}})
	got = c.expectAck("l1")
	want = protocol.AckData{
		Event: protocol.EventLeave,
		Rooms: []string{"a"},
		Refused: []protocol.RefusedRoom{
			{Room: "never", Reason: protocol.RefusedNotMember},
			{Room: c.ID, Reason: protocol.RefusedNotAllowed},
		},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("leave ack\n got %+v\nwant %+v", got, want)
	}
	// Without an id a join is answered as before: not at all.
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"a"}})
	c.Probe()
}

func TestJoinWithoutValidatorIsRefusedInTheAck(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "u1")
	c.SendID(protocol.EventJoin, "j", map[string]any{"rooms": []string{"a"}})
	got := c.expectAck("j")
	if len(got.Rooms) != 0 || len(got.Refused) != 1 || got.Refused[0] != (protocol.RefusedRoom{Room: "a", Reason: protocol.RefusedNotAllowed}) {
		t.Fatalf("ack %+v", got)
	}
}

func TestValidatorErrorsAnswerTheRequest(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			switch req.Rooms[0] {
			case "banned":
				return nil, fmt.Errorf("checking %s: %w", req.Rooms[0], server.ClientError{Message: "You are banned from this room"})
			case "role":
				if req.Metadata["role"] != "tester" {
					return nil, server.ClientError{Message: "metadata missing"}
				}
				return req.Rooms, nil
			}
			return nil, errors.New("room store down")
		},
	})
	c := ts.connect(t, "u1")
	c.SendID(protocol.EventJoin, "1", map[string]any{"rooms": []string{"banned"}})
	c.ExpectErrorID("You are banned from this room", "1")
	c.SendID(protocol.EventJoin, "2", map[string]any{"rooms": []string{"other"}})
	c.ExpectErrorID(protocol.ErrMsgInternal, "2")
	// The validator sees the user's metadata (tokenAuth sets role=tester).
	c.SendID(protocol.EventJoin, "3", map[string]any{"rooms": []string{"role"}})
	if got := c.expectAck("3"); len(got.Rooms) != 1 {
		t.Fatalf("join with metadata: %+v", got)
	}
	// Without an id a server-side failure stays silent (§3), a
	// ClientError is still told.
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"other"}})
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"banned"}})
	c.ExpectErrorID("You are banned from this room", "")
}

func TestMalformedIDsAndRoomListsAreRefused(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	c := ts.connect(t, "u1")
	for _, tt := range []struct {
		name, give string
	}{
		{"number id", `{"event":"join","id":7,"data":{"rooms":["a"]}}`},
		{"object id", `{"event":"chat","id":{"x":1}}`},
		{"null id", `{"event":"chat","id":null}`},
		{"id too long", `{"event":"chat","id":"` + strings.Repeat("é", protocol.MaxIDLength+1) + `"}`},
		{"null room in join", `{"event":"join","data":{"rooms":["public-n",null]}}`},
		{"null room in leave", `{"event":"leave","data":{"rooms":["ws-default",null]}}`},
		{"number room", `{"event":"join","data":{"rooms":["a",1]}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.T = t
			c.SendRaw(tt.give)
			c.ExpectError(protocol.ErrMsgInvalidFormat)
		})
	}
	c.T = t
	ci, _ := ts.h.Client(c.ID)
	if contains(ci.Rooms, "public-n") || contains(ci.Rooms, "a") || !contains(ci.Rooms, protocol.DefaultRoom) {
		t.Fatalf("a refused request changed the rooms: %v", ci.Rooms)
	}
	// An id of exactly MaxIDLength characters is fine, and answered.
	id := strings.Repeat("é", protocol.MaxIDLength)
	c.SendID(protocol.EventJoin, id, map[string]any{"rooms": []string{"ok", ""}})
	if got := c.expectAck(id); len(got.Rooms) != 1 || got.Refused[0].Reason != protocol.RefusedInvalidName {
		t.Fatalf("ack %+v", got)
	}
	// A malformed request with an id is refused with that id.
	c.SendRaw(`{"event":"join","id":"m","data":{"rooms":"a"}}`)
	c.ExpectErrorID(protocol.ErrMsgInvalidFormat, "m")
}

func TestReplyAndHandlerErrors(t *testing.T) {
	var ts *testServer
	ts = startServer(t, nil, server.Options{
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			switch ev.Message.Event {
			case "echo":
				return server.FromContext(ctx).Reply(ctx, ev, "echoed", map[string]any{"got": ev.Message.Data, "id": ev.Message.ID})
			case "bad":
				return &server.ClientError{Message: "no such order"}
			case "broken":
				return errors.New("database exploded")
			case "panic":
				panic("handler bug")
			}
			return nil
		},
	})
	c := ts.connect(t, "u1")
	other := ts.connect(t, "u1")

	c.SendID("echo", "r1", 42)
	f := c.Expect("echoed")
	if f.ID != "r1" || !jsonEqual(f.Data, `{"got":42,"id":"r1"}`) {
		t.Fatalf("reply %+v", f)
	}
	c.Send("echo", 1) // no id: the reply has none either
	if f := c.Expect("echoed"); f.ID != "" {
		t.Fatalf("reply to a frame without id carries id %q", f.ID)
	}
	c.SendID("bad", "r2", nil)
	c.ExpectErrorID("no such order", "r2")
	c.SendID("broken", "r3", nil)
	c.ExpectErrorID(protocol.ErrMsgInternal, "r3")
	c.SendID("panic", "r4", nil)
	c.ExpectErrorID(protocol.ErrMsgInternal, "r4")
	c.Send("broken", nil) // no id: nothing is sent for a server-side failure
	c.Probe()
	// Only the asking client got anything.
	other.Probe()
	if st := ts.h.Stats(); st.CallbackPanics != 1 || st.CallbackErrors != 3 {
		t.Errorf("callback counters: panics %d errors %d", st.CallbackPanics, st.CallbackErrors)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A reply to an encrypted client goes through the transformer and keeps
// the request id outside the encrypted payload.
func TestReplyToEncryptedClientKeepsTheID(t *testing.T) {
	seen := newRecorder[string]()
	ts := startServer(t, nil, server.Options{
		Config:    server.Config{RequireEncryption: true},
		Handshake: okHandshake,
		OutboundTransformer: func(ctx context.Context, req server.OutboundRequest) (*server.OutboundResult, error) {
			seen.Add(req.ID)
			return wrapTransformer(ctx, req)
		},
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			return server.FromContext(ctx).Reply(ctx, ev, "pong", 7)
		},
	})
	c := ts.dial(t)
	c.auth("enc")
	c.SendID("ping", "q1", nil)
	f := c.Expect(protocol.EventEncrypted)
	if f.ID != "q1" || !jsonEqual(f.Data, `{"e":"pong","d":7}`) {
		t.Fatalf("encrypted reply %+v", f)
	}
	if id := seen.Wait(t); id != "q1" {
		t.Fatalf("transformer saw id %q", id)
	}
}
