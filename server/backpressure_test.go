package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// slowFanout sends count messages of size bytes to the default room, where
// a client that never reads and one that reads everything both sit.
func slowFanout(t *testing.T, cfg server.Config, count, size int) (ts *testServer, slow, fast *wsClient, disconnected *recorder[server.ClientDisconnectedEvent], logs *observer.ObservedLogs) {
	t.Helper()
	disconnected = newRecorder[server.ClientDisconnectedEvent]()
	core, logs := observer.New(zap.WarnLevel)
	ts = startServer(t, nil, server.Options{
		Config: cfg,
		Logger: zap.New(core),
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			disconnected.Add(ev)
			return nil
		},
	})
	slow = ts.connect(t, "slow")
	fast = ts.connect(t, "fast")
	payload := strings.Repeat("x", size)
	received := make(chan error, 1)
	progress := make(chan int, count)
	go func() {
		for i := range count {
			_ = fast.Conn.SetReadDeadline(time.Now().Add(waitTimeout))
			_, b, err := fast.Conn.ReadMessage()
			if err != nil {
				received <- fmt.Errorf("fast client, message %d: %w", i, err)
				return
			}
			if want := fmt.Sprintf(`{"event":"bulk","data":{"i":%d,`, i); !strings.HasPrefix(string(b), want) {
				received <- fmt.Errorf("fast client got %.40s…, want %s", b, want)
				return
			}
			progress <- i
		}
		received <- nil
	}()
	for i := range count {
		if err := ts.h.SendToRoom(protocol.DefaultRoom, "bulk", map[string]any{"i": i, "p": payload}); err != nil {
			t.Fatal(err)
		}
		if info, ok := ts.h.Client(slow.ID); ok && info.QueuedBytes > cfg.BackpressureLimit {
			t.Fatalf("slow client queue %d bytes, limit %d", info.QueuedBytes, cfg.BackpressureLimit)
		}
		// Pace the sender by the fast client, two messages at a time, so
		// that only the client that never reads goes over the limit (bytes
		// count against it until the write that carries them returns, so
		// the fast client may briefly hold two pairs).
		if i%2 == 1 {
			waitProgress(t, progress, received, i)
		}
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	return ts, slow, fast, disconnected, logs
}

func TestSlowClientDropsAndOthersKeepReceiving(t *testing.T) {
	const limit = 64 << 10
	ts, slow, fast, _, logs := slowFanout(t, server.Config{BackpressureLimit: limit}, 3000, 8<<10)
	info, ok := ts.h.Client(slow.ID)
	if !ok {
		t.Fatal("slow client was disconnected; the default policy drops messages")
	}
	st := ts.h.Stats()
	if st.MessagesDropped == 0 || st.BackpressureEvents == 0 {
		t.Errorf("nothing dropped for a client that never reads: %+v", st)
	}
	if !info.Backpressured {
		t.Error("slow client not flagged backpressured")
	}
	// Drops are counted per message and logged once per episode.
	if n := logs.FilterMessageSnippet("over backpressure limit").FilterField(zap.String("client_id", slow.ID)).Len(); n != 1 {
		t.Errorf("backpressure logged %d times for the slow client, want once", n)
	}
	fast.Probe()
	// Once the slow client reads again, its queue drains and the flag clears.
	go func() {
		for {
			_ = slow.Conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, _, err := slow.Conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	eventually(t, "backpressure cleared", func() bool {
		info, _ := ts.h.Client(slow.ID)
		return !info.Backpressured && info.QueuedBytes == 0
	})
}

func TestSlowClientClosedWhenConfigured(t *testing.T) {
	const limit = 64 << 10
	ts, slow, fast, disconnected, _ := slowFanout(t, server.Config{
		BackpressureLimit:        limit,
		CloseOnBackpressureLimit: true,
		WriteTimeout:             300 * time.Millisecond,
	}, 3000, 8<<10)
	ev := disconnected.Wait(t)
	if ev.ClientID != slow.ID {
		t.Fatalf("disconnected %s, want the slow client", ev.ClientID)
	}
	if _, ok := ts.h.Client(fast.ID); !ok {
		t.Fatal("fast client was disconnected")
	}
	fast.Probe()
}

func waitProgress(t *testing.T, progress <-chan int, failed chan error, want int) {
	t.Helper()
	for {
		select {
		case got := <-progress:
			if got >= want {
				return
			}
		case err := <-failed:
			failed <- err
			if err == nil { // it has read everything
				return
			}
			t.Fatalf("fast client stopped: %v", err)
		case <-time.After(waitTimeout):
			t.Fatalf("fast client did not get message %d", want)
		}
	}
}
