package client_test

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

// TestOnFrame: application frames go to OnFrame, on the reader, instead of
// OnEvent. Because it runs on the reader, JoinSince returns only after
// OnFrame had every frame the server replayed before the ack; the offsets
// are recorded as with OnEvent. A panic costs only its frame, and OnFrame
// may Send.
func TestOnFrame(t *testing.T) {
	ts := startServer(t, "", server.Options{Config: server.Config{HistoryFor: historyRooms}})
	room := "feed-onframe-" + strconv.FormatInt(time.Now().UnixNano(), 36) // the shared Redis keeps streams across -count
	for n := 1; n <= 4; n++ {
		if err := ts.h.PublishToRoom(ctxT(t), room, "msg", map[string]int{"n": n}); err != nil {
			t.Fatal(err)
		}
	}
	kept, _, err := ts.h.History(ctxT(t), room, "")
	if err != nil || len(kept) != 4 {
		t.Fatalf("History: %d messages, %v", len(kept), err)
	}

	frames := wstest.NewRecorder[client.Frame]()
	var events atomic.Int32
	var c atomic.Pointer[client.Client]
	c.Store(dial(t, ts.url(), client.Options{Credentials: token("user:alice"),
		OnEvent: func(client.Frame) { events.Add(1) },
		OnFrame: func(f client.Frame) {
			switch f.Event {
			case "boom":
				panic("handler bug")
			case "ping":
				if err := c.Load().Send("pong", nil); err != nil {
					t.Errorf("Send from OnFrame: %v", err)
				}
			}
			frames.Add(f)
		}}))

	ack, err := c.Load().JoinSince(ctxT(t), map[string]string{room: kept[0].Offset})
	if err != nil || !ack.Recovered[room] {
		t.Fatalf("JoinSince: %+v, %v", ack, err)
	}
	if n := frames.Count(); n != 3 {
		t.Fatalf("OnFrame had %d frames when JoinSince returned, want the 3 replayed before the ack", n)
	}
	var got []int
	for range 3 {
		got = append(got, seq(t, frames.Wait(t)))
	}
	if !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("replayed %v, want [2 3 4]", got)
	}
	if off := c.Load().Offsets()[room]; off != kept[3].Offset {
		t.Fatalf("offset %q, want the last replayed %q", off, kept[3].Offset)
	}

	id := c.Load().Connected().ID
	for _, ev := range []string{"boom", "ping"} {
		if err := ts.h.SendToClient(id, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	if f := frames.Wait(t); f.Event != "ping" {
		t.Fatalf("after the panic OnFrame got %q, want ping", f.Event)
	}
	if ev := ts.Messages.Wait(t); ev.Message.Event != "pong" {
		t.Fatalf("server got %q, want the pong sent from OnFrame", ev.Message.Event)
	}
	if n := events.Load(); n != 0 {
		t.Fatalf("OnEvent got %d frames, want none with OnFrame set", n)
	}
}
