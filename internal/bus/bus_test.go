package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/bus"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/wstest"
)

// waitTimeout bounds every wait in these tests; nothing waits by sleeping.
const waitTimeout = wstest.WaitTimeout

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// inbox records what a bus hands its handler.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "channel payload"
	seen chan struct{}
}

func newInbox() *inbox { return &inbox{seen: make(chan struct{}, 1)} }

func (in *inbox) handle(channel string, payload []byte) {
	in.mu.Lock()
	in.msgs = append(in.msgs, channel+" "+string(payload))
	in.mu.Unlock()
	select {
	case in.seen <- struct{}{}:
	default:
	}
}

// expect waits until the handler got "channel payload".
func (in *inbox) expect(t *testing.T, channel, payload string) {
	t.Helper()
	want := channel + " " + payload
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		for _, m := range in.msgs {
			if m == want {
				in.mu.Unlock()
				return
			}
		}
		got := append([]string(nil), in.msgs...)
		in.mu.Unlock()
		select {
		case <-in.seen:
		case <-deadline.C:
			t.Fatalf("no %q within %v; got %q", want, waitTimeout, got)
		}
	}
}

// mode builds a bus of one mode on a fresh Redis.
type mode struct {
	name string
	// connect returns a new client on the mode's Redis.
	connect func(t *testing.T) redis.UniversalClient
	build   func(rdb redis.UniversalClient, o bus.Options) (bus.Bus, error)
}

func modes(t *testing.T) []mode {
	t.Helper()
	single := func(t *testing.T) func(*testing.T) redis.UniversalClient {
		rs := redistest.Start(t)
		return func(t *testing.T) redis.UniversalClient { return rs.Client(t) }
	}
	return []mode{
		{"pattern", single(t), func(r redis.UniversalClient, o bus.Options) (bus.Bus, error) { return bus.NewPattern(r, o), nil }},
		{"interest", single(t), func(r redis.UniversalClient, o bus.Options) (bus.Bus, error) { return bus.NewInterest(r, o), nil }},
		{"sharded", func() func(*testing.T) redis.UniversalClient {
			cl := redistest.StartCluster(t, 3)
			return func(t *testing.T) redis.UniversalClient { return cl.ClusterClient(t) }
		}(), bus.NewSharded},
	}
}

// start builds and starts a bus that is closed when the test ends.
func (m mode) start(t *testing.T, rdb redis.UniversalClient, o bus.Options, h bus.Handler) bus.Bus {
	t.Helper()
	b, err := m.build(rdb, o)
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	t.Cleanup(b.Close)
	if err := b.Start(testContext(t), h); err != nil {
		t.Fatalf("%s: Start: %v", m.name, err)
	}
	return b
}

// TestModesCarryMessages: in every Redis mode a wanted channel, once
// awaited, gets what another bus publishes on it, and the base channels
// (ws:broadcast, ws:control) are live from Start on.
func TestModesCarryMessages(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			ctx := testContext(t)
			var published atomic.Int64
			o := bus.Options{Events: bus.Events{Published: func(r bus.PublishResult) {
				if r.Err == nil && r.Queued {
					published.Add(1)
				}
			}}}
			got := newInbox()
			a := m.start(t, m.connect(t), o, got.handle)
			b := m.start(t, m.connect(t), o, newInbox().handle)
			if h := a.Health(); !h.Live || !h.DownSince.IsZero() {
				t.Fatalf("Health after Start = %+v, want live", h)
			}
			room := protocol.ChannelRoom("r1")
			a.Want(room)
			a.Await(ctx, []string{room, protocol.ChannelControl, protocol.ChannelBroadcast})
			for i, ch := range []string{room, protocol.ChannelBroadcast, protocol.ChannelControl} {
				payload := fmt.Sprintf(`{"n":%d}`, i)
				if err := b.Publish(ctx, ch, []byte(payload)); err != nil {
					t.Fatalf("Publish %s: %v", ch, err)
				}
				got.expect(t, ch, payload)
			}
			if n := published.Load(); n != 3 {
				t.Errorf("Published events = %d, want 3", n)
			}
		})
	}
}

// TestInterestUnwantUnsubscribes: interest mode subscribes exactly the
// wanted channels; Unwant takes a channel off Redis.
func TestInterestUnwantUnsubscribes(t *testing.T) {
	rs := redistest.Start(t)
	ctx := testContext(t)
	b := bus.NewInterest(rs.Client(t), bus.Options{})
	t.Cleanup(b.Close)
	if err := b.Start(ctx, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	admin := rs.Client(t)
	subs := func(ch string) int64 {
		n, err := admin.PubSubNumSub(ctx, ch).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[ch]
	}
	ch := protocol.ChannelUser("u1")
	b.Want(ch)
	b.Await(ctx, []string{ch})
	if n := subs(ch); n != 1 {
		t.Fatalf("after Want+Await: %d subscribers of %s, want 1", n, ch)
	}
	b.Unwant(ch)
	wstest.Eventually(t, "unsubscribed from "+ch, func() bool { return subs(ch) == 0 })
	// The base channels stay whatever is asked.
	b.Unwant(protocol.ChannelControl)
	b.Want(ch)
	b.Await(ctx, []string{ch})
	if n := subs(protocol.ChannelControl); n != 1 {
		t.Errorf("%d subscribers of ws:control after Unwant, want 1 (a base channel)", n)
	}
}

// TestOutageIsCountedAndHealed: when Redis dies the bus reports one outage,
// is not live (with the outage start), refuses publishes at once; when
// Redis is back it resubscribes, reports the gap and carries messages.
func TestOutageIsCountedAndHealed(t *testing.T) {
	for _, routing := range []string{"pattern", "interest"} {
		t.Run(routing, func(t *testing.T) {
			rs := redistest.Start(t)
			ctx := testContext(t)
			var outages, restores atomic.Int64
			var gap atomic.Int64
			o := bus.Options{Events: bus.Events{
				Outage:   func(error) { outages.Add(1) },
				Restored: func(d time.Duration) { restores.Add(1); gap.Store(int64(d)) },
			}}
			var b bus.Bus
			if routing == "pattern" {
				b = bus.NewPattern(rs.Client(t), o)
			} else {
				b = bus.NewInterest(rs.Client(t), o)
			}
			t.Cleanup(b.Close)
			got := newInbox()
			if err := b.Start(ctx, got.handle); err != nil {
				t.Fatal(err)
			}
			room := protocol.ChannelRoom("heal")
			b.Want(room)
			b.Await(ctx, []string{room})

			rs.Kill()
			wstest.Eventually(t, "outage seen", func() bool { return !b.Health().Live })
			if h := b.Health(); h.DownSince.IsZero() {
				t.Errorf("Health during the outage = %+v, want its start", h)
			}
			start := time.Now()
			if err := b.Publish(ctx, room, []byte("x")); !errors.Is(err, bus.ErrNotLive) {
				t.Errorf("Publish during the outage = %v, want ErrNotLive", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("Publish during the outage took %v, want at once", took)
			}
			rs.Restart(t)
			wstest.Eventually(t, "live again", func() bool { return b.Health().Live })
			if outages.Load() != 1 || restores.Load() != 1 || gap.Load() <= 0 {
				t.Errorf("outages %d, restores %d, gap %v; want 1, 1, > 0", outages.Load(), restores.Load(), time.Duration(gap.Load()))
			}
			b.Await(ctx, []string{room})
			pub := rs.Client(t)
			wstest.Eventually(t, "delivery after the outage", func() bool {
				if err := pub.Publish(ctx, room, "back").Err(); err != nil {
					return false
				}
				got.mu.Lock()
				defer got.mu.Unlock()
				for _, m := range got.msgs {
					if m == room+" back" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestStartRefusedAtOnce: a refusal no retry can fix ends Start at once
// with a *RefusedError holding Redis' words.
func TestStartRefusedAtOnce(t *testing.T) {
	rs := redistest.StartWith(t, redistest.Options{Password: "secret"})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, b := range []bus.Bus{bus.NewPattern(rdb, bus.Options{StartTimeout: 20 * time.Second}), bus.NewInterest(rdb, bus.Options{StartTimeout: 20 * time.Second})} {
		t.Cleanup(b.Close)
		start := time.Now()
		err := b.Start(testContext(t), func(string, []byte) {})
		var refused *bus.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("Start = %v, want a *RefusedError with NOAUTH", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Start took %v, want at once", took)
		}
	}
}

// TestStartRetriesUntilTimeout: an unreachable Redis is retried, with
// WARN lines naming the cause, until StartTimeout; the error keeps it.
func TestStartRetriesUntilTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	core, logs := observer.New(zap.WarnLevel)
	const timeout = 700 * time.Millisecond
	b := bus.NewInterest(rdb, bus.Options{StartTimeout: timeout, Logger: zap.New(core)})
	t.Cleanup(b.Close)
	start := time.Now()
	err = b.Start(testContext(t), func(string, []byte) {})
	if took := time.Since(start); err == nil || took < timeout {
		t.Fatalf("Start = %v after %v, want an error after %v", err, took, timeout)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not name the cause", err)
	}
	if logs.FilterMessage("redis not ready at start-up; retrying until RedisTimeout").Len() == 0 {
		t.Errorf("no retry warning: %v", logs.All())
	}
	if err := b.Publish(context.Background(), protocol.ChannelBroadcast, []byte("x")); !errors.Is(err, bus.ErrNotLive) {
		t.Errorf("Publish after a failed Start = %v, want ErrNotLive", err)
	}
}

// TestCloseEndsStart: Close ends a Start that waits for Redis, at once.
func TestCloseEndsStart(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	b := bus.NewPattern(rdb, bus.Options{StartTimeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- b.Start(context.Background(), func(string, []byte) {}) }()
	time.Sleep(100 * time.Millisecond) // let Start reach its retries (no event to wait for)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Start = %v, want ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Start still waiting after Close")
	}
	if err := b.Start(context.Background(), nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// TestAsyncPublishAndClose: with AsyncPublish a publish returns once
// queued and its result comes as an event; after Close publishes fail with
// ErrClosed.
func TestAsyncPublishAndClose(t *testing.T) {
	rs := redistest.Start(t)
	results := make(chan bus.PublishResult, 10)
	b := bus.NewInterest(rs.Client(t), bus.Options{AsyncPublish: true,
		Events: bus.Events{Published: func(r bus.PublishResult) { results <- r }}})
	ctx := testContext(t)
	if err := b.Start(ctx, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, protocol.ChannelBroadcast, []byte("a")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case r := <-results:
		if !r.Queued || r.Err != nil || r.Channel != protocol.ChannelBroadcast {
			t.Errorf("result %+v, want queued and published", r)
		}
	case <-ctx.Done():
		t.Fatal("no publish result")
	}
	b.Close()
	b.Close() // idempotent
	if err := b.Publish(ctx, protocol.ChannelBroadcast, []byte("a")); !errors.Is(err, bus.ErrNotLive) && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed or ErrNotLive", err)
	}
	if h := b.Health(); h.Live {
		t.Errorf("Health after Close = %+v, want not live", h)
	}
}

// TestShardedNeedsCluster: sharded mode refuses a single-node client.
func TestShardedNeedsCluster(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	if _, err := bus.NewSharded(rdb, bus.Options{}); !errors.Is(err, bus.ErrNeedsCluster) {
		t.Errorf("NewSharded(*redis.Client) = %v, want ErrNeedsCluster", err)
	}
}

// TestLocal: the local bus needs no Redis: live once started, publishes
// reach nobody and succeed at once, Await returns at once, and after Close
// everything fails with ErrClosed.
func TestLocal(t *testing.T) {
	b := bus.NewLocal()
	ctx := testContext(t)
	if err := b.Publish(ctx, protocol.ChannelBroadcast, nil); !errors.Is(err, bus.ErrNotLive) {
		t.Errorf("Publish before Start = %v, want ErrNotLive", err)
	}
	if b.Health().Live {
		t.Error("live before Start")
	}
	called := false
	if err := b.Start(ctx, func(string, []byte) { called = true }); err != nil {
		t.Fatal(err)
	}
	if !b.Health().Live {
		t.Error("not live after Start")
	}
	b.Want(protocol.ChannelRoom("r"))
	b.Await(ctx, []string{protocol.ChannelRoom("r")}) // returns at once: nothing to wait for
	if err := b.Publish(ctx, protocol.ChannelRoom("r"), []byte("x")); err != nil {
		t.Errorf("Publish = %v", err)
	}
	if called {
		t.Error("the local bus handed its own publish to its handler")
	}
	b.Unwant(protocol.ChannelRoom("r"))
	b.Close()
	if err := b.Publish(ctx, protocol.ChannelBroadcast, nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.Start(ctx, nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}
