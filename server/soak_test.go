package server_test

import (
	"context"
	"flag"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/server"
)

var (
	soakCycles  = flag.Int("soak.cycles", 10000, "connect/authenticate/disconnect cycles in TestChurnSoak")
	soakRouting = flag.String("soak.routing", server.RoutingInterest, "RedisRouting for TestChurnSoak")
)

// TestChurnSoak runs many short sessions with traffic and checks that
// goroutines, heap and indexes return to where they started.
func TestChurnSoak(t *testing.T) {
	var disconnects atomic.Int64
	ts := startServer(t, nil, server.Options{
		Config:       server.Config{RedisRouting: *soakRouting},
		ValidateRoom: allowAll,
		ClientDisconnected: func(context.Context, server.ClientDisconnectedEvent) error {
			disconnects.Add(1)
			return nil
		},
	})
	// Warm up the pools, then take the baseline.
	ts.connect(t, "warm").Conn.Close()
	eventually(t, "warm-up client gone", func() bool { return len(ts.h.Clients()) == 0 })
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const workers = 32
	cycles := *soakCycles
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(cycles) {
				if err := churnOnce(ts); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)
	eventually(t, "every disconnect callback", func() bool { return disconnects.Load() == int64(cycles)+1 })
	st := ts.h.Stats()
	if st.Connections != 0 || st.Users != 0 || st.Rooms != 0 || len(ts.h.Rooms()) != 0 {
		t.Errorf("indexes not empty after churn: %+v", st)
	}
	// Back to the baseline, but for the idle workers the pollers keep (a
	// bounded pool, not one per connection).
	pool := server.PollWorkersMax(ts.h.Config())
	eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseGoroutines+2+pool })
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	if growth > 8<<20 {
		t.Errorf("heap in use grew by %d bytes over %d cycles", growth, cycles)
	}
	t.Logf("%d cycles in %v (%.0f/s); heap in use %+d bytes", cycles, took, float64(cycles)/took.Seconds(), growth)
}

// churnOnce connects, authenticates, joins a room (waiting for the ack),
// sends to it and closes.
func churnOnce(ts *testServer) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Dial(ctx, ts.wsURL(), client.Options{
		Credentials: func(context.Context) (any, error) { return map[string]string{"token": "user:churn"}, nil },
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Join(ctx, "churn"); err != nil {
		return err
	}
	return ts.h.SendToRoom("churn", "tick", nil)
}
