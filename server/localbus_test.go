package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// TestLocalBusServesOneInstance: without Redis the Helper authenticates,
// joins rooms, delivers and publishes (to nobody else) as usual.
func TestLocalBusServesOneInstance(t *testing.T) {
	ts := startLocal(t, server.Options{ValidateRoom: allowAll})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.h.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	a := ts.connect(t, "alice")
	b := ts.connect(t, "bob")
	b.SendID("join", "j1", map[string]any{"rooms": []string{"lobby"}})
	b.Expect("ack")
	if err := ts.h.PublishToRoom(ctx, "lobby", "hello", map[string]int{"n": 1}); err != nil {
		t.Fatalf("PublishToRoom: %v", err)
	}
	b.Expect("hello")
	if err := ts.h.PublishToUser(ctx, "alice", "for-alice", nil); err != nil {
		t.Fatalf("PublishToUser: %v", err)
	}
	a.Expect("for-alice")
	if err := ts.h.DisconnectUser(ctx, "bob", server.Disconnect{Code: 4100, Reason: "bye"}); err != nil {
		t.Fatalf("DisconnectUser: %v", err)
	}
	b.ExpectClose(4100, "bye")
	st := ts.h.Stats()
	if st.RedisPublished != 0 || st.RedisPublishErrors != 0 || st.RedisOutages != 0 {
		t.Errorf("Redis counters moved on the local bus: %+v", st)
	}
}

// TestLocalBusOptions: LocalBus replaces Redis; both at once, or neither,
// are refused by New.
func TestLocalBusOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name string
		give server.Options
		want error
	}{
		{"local bus", server.Options{LocalBus: true}, nil},
		{"neither", server.Options{}, server.ErrNoRedis},
		{"both", server.Options{LocalBus: true, Redis: rdb}, server.ErrLocalBusWithRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Authenticate = tokenAuth
			h, err := server.New(tt.give)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New = %v, want %v", err, tt.want)
			}
			if h != nil {
				if err := h.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestHealthAndPublishDoNotWaitForConfigure: while Configure waits for a
// Redis that is down, Health and publishes answer ErrNotConfigured at once;
// Shutdown ends the wait, and afterwards they answer ErrClosed.
func TestHealthAndPublishDoNotWaitForConfigure(t *testing.T) {
	rs := redistest.Start(t)
	rs.Kill()
	h, err := server.New(server.Options{
		Config:       server.Config{RedisTimeout: time.Minute},
		Redis:        rs.Client(t),
		Authenticate: tokenAuth,
	})
	if err != nil {
		t.Fatal(err)
	}
	configured := make(chan error, 1)
	go func() { configured <- h.Configure(context.Background()) }()
	// A bound, not an event: Configure is retrying by then.
	time.Sleep(200 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	const atOnce = time.Second
	calls := []struct {
		name string
		call func() error
	}{
		{"Health", func() error { return h.Health(ctx) }},
		{"PublishToRoom", func() error { return h.PublishToRoom(ctx, "r", "e", nil) }},
		{"Broadcast", func() error { return h.PublishBroadcast(ctx, "e", nil) }},
		{"DisconnectUser", func() error { return h.DisconnectUser(ctx, "u", server.Disconnect{}) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if took := time.Since(start); took > atOnce {
			t.Errorf("%s took %v while Configure waits, want at once", c.name, took)
		}
		if !errors.Is(err, server.ErrNotConfigured) {
			t.Errorf("%s while Configure waits = %v, want ErrNotConfigured", c.name, err)
		}
	}
	_ = h.Stats() // never blocks either

	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-configured:
		if !errors.Is(err, server.ErrClosed) {
			t.Errorf("Configure ended by Shutdown = %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Configure still waiting after Shutdown")
	}
	if took := time.Since(start); took > 2*atOnce {
		t.Errorf("Shutdown during Configure took %v", took)
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, server.ErrClosed) {
			t.Errorf("%s after Shutdown = %v, want ErrClosed", c.name, err)
		}
	}
	if err := h.Configure(ctx); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Configure after Shutdown = %v, want ErrClosed", err)
	}
}

// TestConcurrentConfigure: concurrent Configure calls configure once and
// all succeed.
func TestConcurrentConfigure(t *testing.T) {
	h, err := server.New(server.Options{LocalBus: true, Authenticate: tokenAuth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.Configure(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Configure: %v", err)
		}
	}
	if err := h.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
}
