package server_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/faultproxy"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// Fault injection between the instances and Redis: each instance of a
// proxiedFleet reaches one real redis-server through its own TCP fault
// proxy (internal/faultproxy), so one instance can be cut off while the
// other keeps publishing. The detection tests (partition, half-open) are in
// fault_detect_test.go.

// proxiedFleet is a fleet whose instances reach Redis through proxies:
// pa for A, pb for B.
type proxiedFleet struct {
	*fleet
	pa, pb *faultproxy.Proxy
}

// startFaultProxy starts a fault proxy in front of target, closed when t's
// cleanups run (after the servers, whose cleanups are registered later).
func startFaultProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	px, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px
}

// newProxiedFleet is newFleetRouting with each instance behind a proxy and
// cfg for both instances (RedisRouting defaults to interest).
func newProxiedFleet(t *testing.T, cfg server.Config) *proxiedFleet {
	t.Helper()
	rs := redistest.Start(t)
	pf := &proxiedFleet{fleet: &fleet{rs: rs}}
	pf.pa = startFaultProxy(t, rs.Addr())
	pf.pb = startFaultProxy(t, rs.Addr())
	f := pf.fleet
	for _, x := range []struct {
		ts **testServer
		px *faultproxy.Proxy
	}{{&f.a, pf.pa}, {&f.b, pf.pb}} {
		rdb := redis.NewClient(&redis.Options{Addr: x.px.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		*x.ts = startServer(t, rs, server.Options{Redis: rdb, ValidateRoom: allowAll, Config: cfg})
	}
	f.a1 = f.a.connect(t, "u1")
	f.b1 = f.b.connect(t, "u1")
	f.a2 = f.a.connect(t, "u2a")
	f.b2 = f.b.connect(t, "u2b")
	for _, c := range []*wsClient{f.a2, f.b2} {
		c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"shared"}})
		c.Probe()
	}
	return pf
}

// waitFor polls cond until it holds or bound passes, and returns how long
// it took. It is eventually with a bound of the caller's choosing, for
// events whose bound is the subject of the test.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		<-tick.C
	}
	return time.Since(start)
}

// waitRoomSubscribers waits until room's channel has want subscribers on
// rs: every instance with members in it is subscribed (interest routing).
func waitRoomSubscribers(t *testing.T, rs *redistest.Server, room string, want int64) {
	t.Helper()
	rdb := rs.Client(t)
	ch := protocol.ChannelRoom(room)
	eventually(t, "subscribers of "+ch, func() bool {
		got, err := rdb.PubSubNumSub(context.Background(), ch).Result()
		return err == nil && got[ch] == want
	})
}

// expectSeq reads frames of event from c and checks that they carry
// 0..n-1, each once, in order.
func expectSeq(t *testing.T, c *wsClient, event string, n int) {
	t.Helper()
	for want := range n {
		f := c.Expect(event)
		var got int
		if err := json.Unmarshal(f.Data, &got); err != nil {
			t.Fatalf("%s data %s: %v", event, f.Data, err)
		}
		if got != want {
			t.Fatalf("%s #%d carries %d: lost, duplicated or reordered", event, want, got)
		}
	}
}

func TestFaultLatencySpikesLoseNothing(t *testing.T) {
	t.Parallel()
	// Asynchronous publishes queue and pipeline, so the spikes stack up
	// messages in flight on both Redis connections: A's publisher and
	// B's subscription.
	pf := newProxiedFleet(t, server.Config{AsyncPublish: true})
	ctx := context.Background()
	const (
		spike = 200 * time.Millisecond
		n     = 400
		every = 5 * time.Millisecond // 2 s of steady traffic
	)
	done := make(chan struct{})
	go func() {
		// Spikes on and off while the traffic flows: each switch keeps
		// what is in flight, in order.
		defer close(done)
		for i := 0; i < 4; i++ {
			pf.pa.SetLatency(spike)
			pf.pb.SetLatency(spike)
			time.Sleep(3 * spike) // the length of a spike, not a wait for an event
			pf.pa.SetLatency(0)
			pf.pb.SetLatency(0)
			time.Sleep(spike) // the pause between two spikes
		}
	}()
	tick := time.NewTicker(every)
	for i := range n {
		<-tick.C
		if err := pf.a.h.PublishToRoom(ctx, "shared", "seq", i); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	tick.Stop()
	<-done
	expectSeq(t, pf.a2, "seq", n) // local
	expectSeq(t, pf.b2, "seq", n) // through Redis, with the spikes
	pf.probeAll()
	for _, h := range []*server.Helper{pf.a.h, pf.b.h} {
		if st := h.Stats(); st.RedisOutages != 0 || st.RedisPublishErrors != 0 {
			t.Errorf("200 ms spikes counted as failures: outages %d, publish errors %d",
				st.RedisOutages, st.RedisPublishErrors)
		}
	}
}

func TestFaultCutConnectionsResumeDelivery(t *testing.T) {
	t.Parallel()
	// Every Redis connection of B closed at once (FIN), as a restarted
	// load balancer does: B notices at once and resubscribes.
	pf := newProxiedFleet(t, server.Config{})
	ctx := context.Background()
	start := time.Now()
	pf.pb.Cut()
	waitFor(t, "outage counted", waitTimeout, func() bool { return pf.b.h.Stats().RedisOutages > 0 })
	waitFor(t, "resubscribed", waitTimeout, func() bool { return pf.b.h.Health(ctx) == nil })
	waitRoomSubscribers(t, pf.rs, "shared", 2)
	if err := pf.a.h.PublishToRoom(ctx, "shared", "after-cut", 1); err != nil {
		t.Fatal(err)
	}
	pf.b2.ExpectData("after-cut", "1")
	pf.a2.ExpectData("after-cut", "1")
	pf.probeAll()
	recovered := time.Since(start)
	st := pf.b.h.Stats()
	if st.RedisResubscribes == 0 || st.RedisLastGap <= 0 {
		t.Errorf("gap not counted: %+v", st)
	}
	t.Logf("connections cut: delivery A→B resumed after %v; B's subscription gap %v", recovered, st.RedisLastGap)
}
