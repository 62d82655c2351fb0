package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/wstest"
)

// historyRooms keeps 100 messages for rooms named feed-*.
func historyRooms(room string) (int, time.Duration) {
	if strings.HasPrefix(room, "feed-") {
		return 100, time.Hour
	}
	return 0, 0
}

// seq is the "n" of a frame's data.
func seq(t *testing.T, f client.Frame) int {
	t.Helper()
	var d struct{ N int }
	if err := f.Decode(&d); err != nil {
		t.Fatalf("data %s: %v", f.Data, err)
	}
	return d.N
}

// TestReconnectRecoversHistory: the client is away while messages go to a
// history room through another instance; after the restart it rejoins
// with "since" and gets exactly the missed ones, in order, then live ones
// (SPEC §9.5). Without the history (the stream lost: another epoch) the
// room is reported unrecovered so the app reloads it.
func TestReconnectRecoversHistory(t *testing.T) {
	tests := []struct {
		name          string
		room          string
		loseHistory   bool
		wantRecovered bool
		wantSeq       []int // after the reconnect, before the live message
	}{
		{name: "recovered", room: "feed-recover", wantRecovered: true, wantSeq: []int{2, 3}},
		// A new epoch: the server says recovered:false and replays
		// nothing; the app reloads (messages 2 and 3 are in its reload).
		{name: "history lost", room: "feed-lost", loseHistory: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := server.Config{HistoryFor: historyRooms}
			a := startServer(t, "", server.Options{Config: cfg})
			addr := a.addr()
			b := startServer(t, "", server.Options{Config: cfg}) // publishes while a is down
			events := wstest.NewRecorder[client.Frame]()
			back := wstest.NewRecorder[client.Reconnected]()
			c := dial(t, a.url(), client.Options{Credentials: token("user:alice"), Reconnect: fast,
				OnEvent: events.Add, OnReconnect: back.Add})
			if _, err := c.Join(ctxT(t), tt.room); err != nil {
				t.Fatal(err)
			}
			publish := func(ts *testServer, n int) {
				t.Helper()
				if err := ts.h.PublishToRoom(ctxT(t), tt.room, "msg", map[string]int{"n": n}); err != nil {
					t.Fatalf("publish %d: %v", n, err)
				}
			}
			publish(a, 1)
			f := events.Wait(t)
			if seq(t, f) != 1 || f.Room != tt.room || f.Offset == "" {
				t.Fatalf("first frame %+v, want n=1 with room and offset", f)
			}
			wstest.Eventually(t, "the offset to be recorded", func() bool { return c.Offsets()[tt.room] == f.Offset })

			if err := a.stop(); err != nil {
				t.Fatal(err)
			}
			publish(b, 2)
			if tt.loseHistory {
				rdb := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr()})
				defer rdb.Close()
				if err := rdb.Del(ctxT(t), protocol.HistoryKey(tt.room), protocol.HistoryEpochKey(tt.room)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			publish(b, 3)
			a2 := startServer(t, addr, server.Options{Config: cfg})

			r := back.Wait(t)
			if got := r.Rejoin.Recovered[tt.room]; got != tt.wantRecovered {
				t.Fatalf("recovered %v, want %v (ack %+v)", got, tt.wantRecovered, r.Rejoin)
			}
			if wantUn := !tt.wantRecovered; slices.Contains(r.Unrecovered, tt.room) != wantUn {
				t.Fatalf("Unrecovered %v, want %s in it: %v", r.Unrecovered, tt.room, wantUn)
			}
			publish(a2, 4)
			var got []int
			for len(got) < len(tt.wantSeq)+1 {
				select {
				case f := <-events.C():
					got = append(got, seq(t, f))
				case <-time.After(waitTimeout):
					t.Fatalf("after the reconnect got only %v, want %v then 4", got, tt.wantSeq)
				}
			}
			if want := append(slices.Clone(tt.wantSeq), 4); !slices.Equal(got, want) {
				t.Fatalf("after the reconnect got %v, want %v (no gap, no duplicate)", got, want)
			}
		})
	}
}

// TestJoinSinceAcrossClients: offsets saved by one client let a new one
// (e.g. after the app restarted) recover with JoinSince.
func TestJoinSinceAcrossClients(t *testing.T) {
	ts := startServer(t, "", server.Options{Config: server.Config{HistoryFor: historyRooms}})
	room := "feed-since"
	events := wstest.NewRecorder[client.Frame]()
	c1 := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnEvent: events.Add})
	if _, err := c1.Join(ctxT(t), room); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.PublishToRoom(ctxT(t), room, "msg", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	events.Wait(t)
	wstest.Eventually(t, "an offset", func() bool { return c1.Offsets()[room] != "" })
	saved := c1.Offsets()
	_ = c1.Close()
	for n := 2; n <= 3; n++ {
		if err := ts.h.PublishToRoom(ctxT(t), room, "msg", map[string]int{"n": n}); err != nil {
			t.Fatal(err)
		}
	}
	events2 := wstest.NewRecorder[client.Frame]()
	c2 := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), OnEvent: events2.Add})
	ack, err := c2.JoinSince(context.Background(), saved)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Recovered[room] || !slices.Equal(ack.Rooms, []string{room}) {
		t.Fatalf("ack %+v, want %s recovered", ack, room)
	}
	for want := 2; want <= 3; want++ {
		if got := seq(t, events2.Wait(t)); got != want {
			t.Fatalf("replayed n=%d, want %d", got, want)
		}
	}
}
