package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

func roomsOf(t *testing.T, ts *testServer, id string) []string {
	t.Helper()
	info, ok := ts.h.Client(id)
	if !ok {
		t.Fatalf("client %s not found", id)
	}
	return info.Rooms
}

func hasRoom(t *testing.T, ts *testServer, id, room string) bool {
	return slices.Contains(roomsOf(t, ts, id), room)
}

func TestJoinRefusedWithoutValidator(t *testing.T) {
	ts := startServer(t, nil, server.Options{})
	c := ts.connect(t, "h")
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"lobby"}})
	c.probe()
	if hasRoom(t, ts, c.id, "lobby") {
		t.Error("joined a room with no validate-room handler bound")
	}
}

func TestJoinSanitisesAndRechecksValidator(t *testing.T) {
	asked := newRecorder[server.ValidateRoomRequest]()
	ts := startServer(t, nil, server.Options{
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			asked.add(req)
			// Grants one requested room, one it was never asked for and
			// an internal topic.
			return []string{"public-1", "admin", "ws:broadcast"}, nil
		},
	})
	c := ts.connect(t, "ivy")
	long := strings.Repeat("é", 257)
	ok256 := strings.Repeat("é", 256)
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"public-1", "", "ws:room:x", long, ok256, "public-1", "private"}})
	req := asked.wait(t)
	if want := []string{"public-1", ok256, "private"}; !slices.Equal(req.Rooms, want) {
		t.Errorf("validator asked about %q, want %q", req.Rooms, want)
	}
	if req.ClientID != c.id || req.UserID != "ivy" {
		t.Errorf("validator request %+v", req)
	}
	c.probe()
	if !hasRoom(t, ts, c.id, "public-1") {
		t.Error("granted room not joined")
	}
	for _, r := range []string{"admin", "ws:broadcast", "private", ok256} {
		if hasRoom(t, ts, c.id, r) {
			t.Errorf("joined %q, which was not both requested and granted", r)
		}
	}
}

func TestJoinRejectsMalformedRequests(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	c := ts.connect(t, "jo")
	for _, give := range []string{
		`{"event":"join"}`,
		`{"event":"join","data":"lobby"}`,
		`{"event":"join","data":{"rooms":"lobby"}}`,
		`{"event":"join","data":{"rooms":["ok",5]}}`,
		`{"event":"leave","data":{"rooms":{"a":1}}}`,
	} {
		c.sendRaw(give)
		c.expectError(protocol.ErrMsgInvalidFormat)
	}
	if hasRoom(t, ts, c.id, "ok") {
		t.Error("joined from a malformed request")
	}
}

func TestRoomLimits(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		ValidateRoom: allowAll,
		Config:       server.Config{MaxRoomsPerRequest: 3, MaxRoomsPerClient: 6},
	})
	c := ts.connect(t, "kim") // own id + 2 default rooms = 3
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"a", "b", "c", "d"}})
	c.expectError(protocol.ErrMsgTooManyRooms)
	if hasRoom(t, ts, c.id, "a") {
		t.Error("joined from a request over MaxRoomsPerRequest")
	}
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"a", "b", "c"}}) // at the request bound
	c.probe()
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"d"}}) // past the client bound
	c.expectError(protocol.ErrMsgTooManyRooms)
	if got := len(roomsOf(t, ts, c.id)); got != 6 {
		t.Errorf("in %d rooms, want 6", got)
	}
	if hasRoom(t, ts, c.id, "d") {
		t.Error("joined past MaxRoomsPerClient")
	}
}

func TestCannotJoinAnotherClientsID(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	victim := ts.connect(t, "victim")
	thief := ts.connect(t, "thief")
	thief.send(protocol.EventJoin, map[string]any{"rooms": []string{victim.id}})
	thief.probe()
	if hasRoom(t, ts, thief.id, victim.id) {
		t.Fatal("joined another client's own-id room")
	}
	if err := ts.h.SendToRoom(victim.id, "secret", "x"); err != nil {
		t.Fatal(err)
	}
	victim.expectData("secret", `"x"`)
	thief.probe()
}

func TestLeave(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	c := ts.connect(t, "lee")
	c.send(protocol.EventJoin, map[string]any{"rooms": []string{"x", "y"}})
	c.probe()
	c.send(protocol.EventLeave, map[string]any{"rooms": []string{"x", c.id, "never-joined", "ws:broadcast"}})
	c.probe()
	rooms := roomsOf(t, ts, c.id)
	if slices.Contains(rooms, "x") || !slices.Contains(rooms, "y") || !slices.Contains(rooms, c.id) {
		t.Errorf("rooms after leave: %v", rooms)
	}
	if slices.Contains(ts.h.Rooms(), "x") {
		t.Error("empty room x still indexed")
	}
}

func TestProgrammaticJoinLeave(t *testing.T) {
	ts := startServer(t, nil, server.Options{}) // no validator: programmatic joins still work
	c := ts.connect(t, "max")
	if err := ts.h.JoinRoom(c.id, "vip"); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.JoinRoom(c.id, "ws:internal"); err == nil {
		t.Error("joined an internal name")
	}
	if err := ts.h.JoinRoom("nobody", "vip"); err != server.ErrClientNotFound {
		t.Errorf("unknown client: %v", err)
	}
	if err := ts.h.SendToRoom("vip", "vip-news", 1); err != nil {
		t.Fatal(err)
	}
	c.expect("vip-news")
	if err := ts.h.LeaveRoom(c.id, "vip", c.id); err != nil {
		t.Fatal(err)
	}
	if hasRoom(t, ts, c.id, "vip") || !hasRoom(t, ts, c.id, c.id) {
		t.Errorf("rooms after LeaveRoom: %v", roomsOf(t, ts, c.id))
	}
}
