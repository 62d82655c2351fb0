package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// historyRooms keeps 5000 messages for rooms named h-*, 20 for small-*.
func historyRooms(room string) (int, time.Duration) {
	switch {
	case strings.HasPrefix(room, "h-"):
		return 5000, time.Hour
	case strings.HasPrefix(room, "small-"):
		return 20, 0
	}
	return 0, 0
}

func historyConfig() server.Config { return server.Config{HistoryFor: historyRooms} }

// historyFrame is a frame of a history room.
type historyFrame struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Room   string          `json:"room"`
	Offset string          `json:"offset"`
	ID     string          `json:"id"`
}

func (c *wsClient) nextHistory() historyFrame {
	c.T.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, b, err := c.Conn.ReadMessage()
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	var f historyFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.T.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// joinSince joins rooms with since offsets and returns the ack; replayed
// frames come before it and are returned too.
func (c *wsClient) joinSince(id string, rooms []string, since map[string]string) (replayed []historyFrame, ack protocol.AckData) {
	c.T.Helper()
	c.SendID(protocol.EventJoin, id, map[string]any{"rooms": rooms, "since": since})
	for {
		f := c.nextHistory()
		if f.Event == protocol.EventAck && f.ID == id {
			if err := json.Unmarshal(f.Data, &ack); err != nil {
				c.T.Fatal(err)
			}
			return replayed, ack
		}
		replayed = append(replayed, f)
	}
}

func seqOf(t *testing.T, f historyFrame) int {
	t.Helper()
	var d struct{ N int }
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("data %s: %v", f.Data, err)
	}
	return d.N
}

func TestHistoryFramesCarryRoomAndOffsetInStreamOrder(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	b := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	ca := a.connect(t, "u1")
	ca.joinAck("h-news", "plain")
	cb := b.connect(t, "u2")
	cb.joinAck("h-news")
	ctx := context.Background()
	// Both instances publish concurrently; every member sees one order.
	var wg sync.WaitGroup
	for _, h := range []*server.Helper{a.h, b.h} {
		wg.Go(func() {
			for i := range 50 {
				if err := h.PublishToRoom(ctx, "h-news", "n", map[string]any{"n": i, "from": h.ServerID()}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var orders [2][]string
	for i, c := range []*wsClient{ca, cb} {
		for range 100 {
			f := c.nextHistory()
			if f.Event != "n" || f.Room != "h-news" || !strings.Contains(f.Offset, ":") {
				t.Fatalf("frame %+v lacks room/offset", f)
			}
			orders[i] = append(orders[i], f.Offset)
		}
		c.Probe()
	}
	if fmt.Sprint(orders[0]) != fmt.Sprint(orders[1]) {
		t.Fatal("the two instances' members saw different orders")
	}
	msgs, _, err := a.h.History(ctx, "h-news", "")
	if err != nil || len(msgs) != 100 || msgs[0].Offset != orders[0][0] || msgs[99].Offset != orders[0][99] {
		t.Fatalf("History: %d messages, %v", len(msgs), err)
	}
	// A plain room's frames are as before.
	if err := a.h.PublishToRoom(ctx, "plain", "p", 1); err != nil {
		t.Fatal(err)
	}
	if f := ca.nextHistory(); f.Room != "" || f.Offset != "" {
		t.Fatalf("plain room frame %+v", f)
	}
	if _, _, err := a.h.History(ctx, "plain", ""); !errors.Is(err, server.ErrHistoryOff) {
		t.Fatalf("History of a plain room: %v", err)
	}
}

// A client disconnected while 1000 messages are published from another
// instance gets exactly those 1000, in order, when it rejoins with since.
func TestRecoveryReplaysExactlyWhatWasMissed(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	b := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	ctx := context.Background()
	c := a.connect(t, "u1")
	c.joinAck("h-feed")
	if err := b.h.PublishToRoom(ctx, "h-feed", "n", map[string]int{"n": 0}); err != nil {
		t.Fatal(err)
	}
	last := c.nextHistory().Offset
	_ = c.Conn.Close()

	start := time.Now()
	for i := 1; i <= 1000; i++ {
		if err := b.h.PublishToRoom(ctx, "h-feed", "n", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	publish := time.Since(start)

	c2 := a.connect(t, "u1")
	start = time.Now()
	replayed, ack := c2.joinSince("r", []string{"h-feed"}, map[string]string{"h-feed": last})
	recovery := time.Since(start)
	if !ack.Recovered["h-feed"] || len(ack.Rooms) != 1 {
		t.Fatalf("ack %+v", ack)
	}
	if len(replayed) != 1000 {
		t.Fatalf("replayed %d messages, want 1000", len(replayed))
	}
	for i, f := range replayed {
		if n := seqOf(t, f); n != i+1 || f.Room != "h-feed" {
			t.Fatalf("replayed[%d] = %d (%+v)", i, n, f)
		}
	}
	// Then live, nothing twice.
	if err := b.h.PublishToRoom(ctx, "h-feed", "n", map[string]int{"n": 1001}); err != nil {
		t.Fatal(err)
	}
	if n := seqOf(t, c2.nextHistory()); n != 1001 {
		t.Fatalf("live after recovery: %d", n)
	}
	c2.Probe()
	t.Logf("1000 history publishes from the other instance: %v (%v each); recovery of 1000: %v",
		publish, publish/1000, recovery)
}

// Publishing goes on during the replay: the client sees every message once,
// in order, across the switch from replay to live.
func TestRecoveryWhilePublishingHasNoGapAndNoDuplicate(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	b := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	em, err := emitter.New(emitter.Options{Redis: rs.Client(t), HistoryFor: historyRooms})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	ctx := context.Background()
	c := a.connect(t, "u1")
	c.joinAck("h-live")
	if err := b.h.PublishToRoom(ctx, "h-live", "n", map[string]int{"n": 0}); err != nil {
		t.Fatal(err)
	}
	last := c.nextHistory().Offset
	_ = c.Conn.Close()

	const total = 600
	var next sync.Mutex // held across taking a number and publishing it
	n := 0
	// Two publishers share one sequence: a server and an emitter, so
	// their appends interleave in the stream.
	published := make(chan struct{})
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for _, pub := range []func(int) error{
		func(i int) error { return b.h.PublishToRoom(ctx, "h-live", "n", map[string]int{"n": i}) },
		func(i int) error { return em.ToRoom(ctx, "h-live", "n", map[string]int{"n": i}) },
	} {
		wg.Go(func() {
			for {
				// Take the next number and publish it in one step, so
				// the shared sequence is the stream's order.
				next.Lock()
				if n >= total {
					next.Unlock()
					return
				}
				n++
				i := n
				err := pub(i)
				next.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				if i == 200 {
					once.Do(func() { close(started) })
				}
			}
		})
	}
	go func() { wg.Wait(); close(published) }()

	<-started // a third is published; the rest goes on during the replay
	c2 := a.connect(t, "u1")
	replayed, ack := c2.joinSince("r", []string{"h-live"}, map[string]string{"h-live": last})
	if !ack.Recovered["h-live"] {
		t.Fatalf("ack %+v", ack)
	}
	<-published
	got := make([]int, 0, total)
	offsets := make([]string, 0, total)
	for _, f := range replayed {
		got = append(got, seqOf(t, f))
		offsets = append(offsets, f.Offset)
	}
	for len(got) < total {
		f := c2.nextHistory()
		got = append(got, seqOf(t, f))
		offsets = append(offsets, f.Offset)
	}
	for i, v := range got {
		if v != i+1 {
			lo := max(0, i-3)
			t.Fatalf("message %d is n=%d (replayed %d): gap, duplicate or reorder; around it: %v %v",
				i, v, len(replayed), got[lo:min(len(got), i+3)], offsets[lo:min(len(got), i+3)])
		}
	}
	c2.Probe()
	t.Logf("%d replayed, %d live after the ack", len(replayed), total-len(replayed))
}

func TestRecoveryReportsFalseWhenHistoryWasTrimmedOrLost(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: historyConfig()})
	ctx := context.Background()
	c := a.connect(t, "u1")
	c.joinAck("small-room", "h-lost")
	for _, room := range []string{"small-room", "h-lost"} {
		if err := a.h.PublishToRoom(ctx, room, "n", map[string]int{"n": 0}); err != nil {
			t.Fatal(err)
		}
	}
	offSmall := c.nextHistory().Offset
	offLost := c.nextHistory().Offset
	_ = c.Conn.Close()

	// small-room keeps 20: after 30 more, the offset's successors are gone.
	for i := 1; i <= 30; i++ {
		if err := a.h.PublishToRoom(ctx, "small-room", "n", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	c2 := a.connect(t, "u1")
	replayed, ack := c2.joinSince("r1", []string{"small-room"}, map[string]string{"small-room": offSmall})
	if ack.Recovered["small-room"] || len(replayed) != 0 || len(ack.Rooms) != 1 {
		t.Fatalf("trimmed: recovered %v, %d replayed, ack %+v", ack.Recovered, len(replayed), ack)
	}

	// Redis restarts without persistence: the stream and its epoch are
	// lost; the next publish starts a new epoch.
	rs.Restart(t)
	eventually(t, "resubscribed", func() bool { return a.h.Health(ctx) == nil })
	if err := a.h.PublishToRoom(ctx, "h-lost", "n", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	c3 := a.connect(t, "u1")
	replayed, ack = c3.joinSince("r2", []string{"h-lost"}, map[string]string{"h-lost": offLost})
	if ack.Recovered["h-lost"] || len(replayed) != 0 {
		t.Fatalf("lost stream: recovered %v, %d replayed", ack.Recovered, len(replayed))
	}
	if err := a.h.PublishToRoom(ctx, "h-lost", "n", map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	f := c3.nextHistory()
	if seqOf(t, f) != 2 || strings.SplitN(f.Offset, ":", 2)[0] == strings.SplitN(offLost, ":", 2)[0] {
		t.Fatalf("after the restart: %+v (old offset %s): want a new epoch", f, offLost)
	}
	// A malformed since is refused.
	c3.SendRaw(`{"event":"join","id":"bad","data":{"rooms":["h-lost"],"since":["x"]}}`)
	c3.ExpectErrorID(protocol.ErrMsgInvalidFormat, "bad")
}

// BenchmarkPublishHistory is the cost of a history-room publish (one script
// call: XADD, PUBLISH) against a plain one (PUBLISH through the pipelining
// publisher), each waiting for Redis.
func BenchmarkPublishHistory(b *testing.B) {
	for _, room := range []string{"plain", "h-bench"} {
		b.Run(room, func(b *testing.B) {
			ts := startServer(b, nil, server.Options{Config: historyConfig()})
			ctx := context.Background()
			data := map[string]string{"pad": strings.Repeat("x", 80)}
			b.ReportAllocs()
			for b.Loop() {
				if err := ts.h.PublishToRoom(ctx, room, "bench", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An encrypted member of a history room gets the room and offset outside
// the encrypted payload, so it can recover after a reconnect.
func TestHistoryFramesToEncryptedClientsKeepRoomAndOffset(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		Config:              server.Config{RequireEncryption: true, HistoryFor: historyRooms},
		Handshake:           okHandshake,
		OutboundTransformer: wrapTransformer,
		ValidateRoom:        allowAll,
	})
	c := ts.dial(t)
	c.auth("enc")
	c.joinAck("h-secret")
	if err := ts.h.PublishToRoom(context.Background(), "h-secret", "n", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	f := c.nextHistory()
	if f.Event != protocol.EventEncrypted || f.Room != "h-secret" || !strings.Contains(f.Offset, ":") ||
		!jsonEqual(f.Data, `{"e":"n","d":{"n":1}}`) {
		t.Fatalf("encrypted history frame %+v", f)
	}
}
