package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/server"
)

// detectBound is the documented bound on noticing a silent Redis
// connection: the receive loop pings after receiveTimeout (5 s) of silence
// and drops the connection when no pong comes within pongTimeout (3 s);
// the rest is slack for the race detector on 2 cores.
const detectBound = 10 * time.Second

func TestFaultPartitionIsDetectedAndHealed(t *testing.T) {
	for _, routing := range []string{server.RoutingInterest, server.RoutingPattern} {
		t.Run(routing, func(t *testing.T) {
			t.Parallel()
			testPartition(t, routing, newProxiedFleet(t, server.Config{RedisRouting: routing}))
		})
	}
}

func testPartition(t *testing.T, routing string, pf *proxiedFleet) {
	ctx := context.Background()
	pf.pb.BlackHole() // B is cut off from Redis: no FIN, no RST
	start := time.Now()
	detected := waitFor(t, "B notices the partition", detectBound, func() bool {
		return errors.Is(pf.b.h.Health(ctx), server.ErrNotReady)
	})
	if err := pf.a.h.Health(ctx); err != nil {
		t.Errorf("A's health %v; only B is partitioned", err)
	}

	// B's publishes fail fast with ErrNotReady; B's local clients still
	// get the message.
	pubStart := time.Now()
	err := pf.b.h.PublishToRoom(ctx, "shared", "during", 1)
	took := time.Since(pubStart)
	var pe *server.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, server.ErrNotReady) || pe.Local != 1 {
		t.Errorf("publish during the partition: %v, want a PublishError with Local 1 wrapping ErrNotReady", err)
	}
	if took > 100*time.Millisecond {
		t.Errorf("publish during the partition took %v; want it to fail fast", took)
	}
	pf.b2.ExpectData("during", "1")

	pf.pb.Heal()
	healed := time.Now()
	waitFor(t, "B resubscribed", waitTimeout, func() bool { return pf.b.h.Health(ctx) == nil })
	if pf.b.h.Stats().RedisSubscribed != true {
		t.Error("Stats().RedisSubscribed false after the heal")
	}
	if routing != server.RoutingPattern {
		// Health is about the base channels; the room's channel is
		// confirmed by the same SUBSCRIBE, but its reply comes later.
		waitRoomSubscribers(t, pf.rs, "shared", 2)
	}
	if err := pf.a.h.PublishToRoom(ctx, "shared", "after", 2); err != nil {
		t.Fatal(err)
	}
	pf.a2.ExpectData("after", "2")
	pf.b2.ExpectData("after", "2")
	if err := pf.b.h.PublishToRoom(ctx, "shared", "back", 3); err != nil {
		t.Fatal(err)
	}
	pf.b2.ExpectData("back", "3")
	pf.a2.ExpectData("back", "3")
	recovered := time.Since(healed)
	pf.probeAll()

	st := pf.b.h.Stats()
	if st.RedisOutages != 1 || st.RedisResubscribes != 1 || st.RedisLastGap <= 0 || st.RedisDowntime < st.RedisLastGap {
		t.Errorf("the gap is not counted once: outages %d, resubscribes %d, last gap %v, downtime %v",
			st.RedisOutages, st.RedisResubscribes, st.RedisLastGap, st.RedisDowntime)
	}
	if st := pf.a.h.Stats(); st.RedisOutages != 0 {
		t.Errorf("A counted %d outages", st.RedisOutages)
	}
	t.Logf("partition: detected after %v (bound %v); delivery both ways %v after the heal; "+
		"B's counted gap %v (partition lasted %v)",
		detected, detectBound, recovered, st.RedisLastGap, healed.Sub(start))
}

func TestFaultHalfOpenSubscriptionIsDetected(t *testing.T) {
	t.Parallel()
	pf := newProxiedFleet(t, server.Config{})
	ctx := context.Background()
	// B's Redis connections stop receiving while their sockets look open;
	// what B writes still reaches Redis. Connections B opens later work.
	pf.pb.HalfOpen()
	start := time.Now()
	detected := waitFor(t, "B notices the half-open subscription", detectBound, func() bool {
		return pf.b.h.Stats().RedisOutages > 0
	})
	waitFor(t, "B resubscribed", waitTimeout, func() bool { return pf.b.h.Health(ctx) == nil })
	waitRoomSubscribers(t, pf.rs, "shared", 2) // B closed the half-open one: its FIN still gets through
	if err := pf.a.h.PublishToRoom(ctx, "shared", "after", 1); err != nil {
		t.Fatal(err)
	}
	pf.b2.ExpectData("after", "1")
	pf.a2.ExpectData("after", "1")
	recovered := time.Since(start)
	pf.probeAll()
	pf.pb.Heal() // releases what the old connection held; B has closed it
	pf.probeAll()
	st := pf.b.h.Stats()
	if st.RedisOutages != 1 || st.RedisResubscribes != 1 {
		t.Errorf("outages %d, resubscribes %d, want 1 each", st.RedisOutages, st.RedisResubscribes)
	}
	t.Logf("half-open subscription: detected after %v (bound %v); delivery A→B resumed %v after it began; "+
		"B's counted gap %v", detected, detectBound, recovered, st.RedisLastGap)
}
