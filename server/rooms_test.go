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
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"lobby"}})
	c.Probe()
	if hasRoom(t, ts, c.ID, "lobby") {
		t.Error("joined a room with no validate-room handler bound")
	}
}

func TestJoinSanitisesAndRechecksValidator(t *testing.T) {
	asked := newRecorder[server.ValidateRoomRequest]()
	ts := startServer(t, nil, server.Options{
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			asked.Add(req)
			// Grants one requested room, one it was never asked for and
			// an internal topic.
			return []string{"public-1", "admin", "ws:broadcast"}, nil
		},
	})
	c := ts.connect(t, "ivy")
	long := strings.Repeat("é", 257)
	ok256 := strings.Repeat("é", 256)
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"public-1", "", "ws:room:x", long, ok256, "public-1", "private"}})
	req := asked.Wait(t)
	if want := []string{"public-1", ok256, "private"}; !slices.Equal(req.Rooms, want) {
		t.Errorf("validator asked about %q, want %q", req.Rooms, want)
	}
	if req.ClientID != c.ID || req.UserID != "ivy" {
		t.Errorf("validator request %+v", req)
	}
	c.Probe()
	if !hasRoom(t, ts, c.ID, "public-1") {
		t.Error("granted room not joined")
	}
	for _, r := range []string{"admin", "ws:broadcast", "private", ok256} {
		if hasRoom(t, ts, c.ID, r) {
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
		c.SendRaw(give)
		c.ExpectError(protocol.ErrMsgInvalidFormat)
	}
	if hasRoom(t, ts, c.ID, "ok") {
		t.Error("joined from a malformed request")
	}
}

func TestRoomLimits(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		ValidateRoom: allowAll,
		Config:       server.Config{MaxRoomsPerRequest: 3, MaxRoomsPerClient: 6},
	})
	c := ts.connect(t, "kim") // own id + 2 default rooms = 3
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"a", "b", "c", "d"}})
	c.ExpectError(protocol.ErrMsgTooManyRooms)
	if hasRoom(t, ts, c.ID, "a") {
		t.Error("joined from a request over MaxRoomsPerRequest")
	}
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"a", "b", "c"}}) // at the request bound
	c.Probe()
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"d"}}) // past the client bound
	c.ExpectError(protocol.ErrMsgTooManyRooms)
	if got := len(roomsOf(t, ts, c.ID)); got != 6 {
		t.Errorf("in %d rooms, want 6", got)
	}
	if hasRoom(t, ts, c.ID, "d") {
		t.Error("joined past MaxRoomsPerClient")
	}
}

func TestCannotJoinAnotherClientsID(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	victim := ts.connect(t, "victim")
	thief := ts.connect(t, "thief")
	thief.Send(protocol.EventJoin, map[string]any{"rooms": []string{victim.ID}})
	thief.Probe()
	if hasRoom(t, ts, thief.ID, victim.ID) {
		t.Fatal("joined another client's own-id room")
	}
	if err := ts.h.SendToRoom(victim.ID, "secret", "x"); err != nil {
		t.Fatal(err)
	}
	victim.ExpectData("secret", `"x"`)
	thief.Probe()
}

func TestLeave(t *testing.T) {
	ts := startServer(t, nil, server.Options{ValidateRoom: allowAll})
	c := ts.connect(t, "lee")
	c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"x", "y"}})
	c.Probe()
	c.Send(protocol.EventLeave, map[string]any{"rooms": []string{"x", c.ID, "never-joined", "ws:broadcast"}})
	c.Probe()
	rooms := roomsOf(t, ts, c.ID)
	if slices.Contains(rooms, "x") || !slices.Contains(rooms, "y") || !slices.Contains(rooms, c.ID) {
		t.Errorf("rooms after leave: %v", rooms)
	}
	if slices.Contains(ts.h.Rooms(), "x") {
		t.Error("empty room x still indexed")
	}
}

func TestProgrammaticJoinLeave(t *testing.T) {
	ts := startServer(t, nil, server.Options{}) // no validator: programmatic joins still work
	c := ts.connect(t, "max")
	if err := ts.h.JoinRoom(c.ID, "vip"); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.JoinRoom(c.ID, "ws:internal"); err == nil {
		t.Error("joined an internal name")
	}
	if err := ts.h.JoinRoom("nobody", "vip"); err != server.ErrClientNotFound {
		t.Errorf("unknown client: %v", err)
	}
	if err := ts.h.SendToRoom("vip", "vip-news", 1); err != nil {
		t.Fatal(err)
	}
	c.Expect("vip-news")
	if err := ts.h.LeaveRoom(c.ID, "vip", c.ID); err != nil {
		t.Fatal(err)
	}
	if hasRoom(t, ts, c.ID, "vip") || !hasRoom(t, ts, c.ID, c.ID) {
		t.Errorf("rooms after LeaveRoom: %v", roomsOf(t, ts, c.ID))
	}
}
