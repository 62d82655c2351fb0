package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// fleet is two instances on one Redis, with clients on both.
type fleet struct {
	a, b   *testServer
	rs     *redistest.Server
	a1, b1 *wsClient // user "u1" on each
	a2, b2 *wsClient // users "u2a" / "u2b", in room "shared"
}

func newFleet(t *testing.T) *fleet {
	return newFleetRouting(t, server.RoutingInterest, server.RoutingInterest)
}

// newFleetRouting builds a fleet whose instances use the given routing modes.
func newFleetRouting(t *testing.T, routingA, routingB string) *fleet {
	t.Helper()
	rs := redistest.Start(t)
	f := &fleet{rs: rs}
	f.a = startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: server.Config{RedisRouting: routingA}})
	f.b = startServer(t, rs, server.Options{ValidateRoom: allowAll, Config: server.Config{RedisRouting: routingB}})
	f.a1 = f.a.connect(t, "u1")
	f.b1 = f.b.connect(t, "u1")
	f.a2 = f.a.connect(t, "u2a")
	f.b2 = f.b.connect(t, "u2b")
	for _, c := range []*wsClient{f.a2, f.b2} {
		c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"shared"}})
		c.Probe()
	}
	return f
}

func (f *fleet) all() []*wsClient { return []*wsClient{f.a1, f.b1, f.a2, f.b2} }

// probeAll proves no client got anything else (no duplicates).
func (f *fleet) probeAll() {
	for _, c := range f.all() {
		c.Probe()
	}
}

func TestCrossInstanceDeliveryExactlyOnce(t *testing.T) {
	for _, modes := range [][2]string{
		{server.RoutingInterest, server.RoutingInterest},
		{server.RoutingPattern, server.RoutingPattern},
		{server.RoutingPattern, server.RoutingInterest}, // a mixed fleet, as with Ignis nodes
	} {
		t.Run(modes[0]+"-"+modes[1], func(t *testing.T) {
			testCrossInstance(t, newFleetRouting(t, modes[0], modes[1]))
		})
	}
}

func testCrossInstance(t *testing.T, f *fleet) {
	ctx := context.Background()

	if err := f.a.h.PublishToRoom(ctx, "shared", "room", 1); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("room", "1")
	f.b2.ExpectData("room", "1")
	f.probeAll()

	if err := f.a.h.PublishToRoom(ctx, "shared", "room-ex", 2, f.b2.ID); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("room-ex", "2")
	f.probeAll()

	if err := f.b.h.PublishBroadcast(ctx, "bc", "x", f.a1.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{f.b1, f.a2, f.b2} {
		c.ExpectData("bc", `"x"`)
	}
	f.probeAll()

	if err := f.a.h.PublishToUser(ctx, "u1", "user", true); err != nil {
		t.Fatal(err)
	}
	f.a1.ExpectData("user", "true")
	f.b1.ExpectData("user", "true")
	f.probeAll()

	// A client on the other instance, by client id and by Send.
	if err := f.a.h.PublishToClient(ctx, f.b1.ID, "client", 3); err != nil {
		t.Fatal(err)
	}
	f.b1.ExpectData("client", "3")
	if err := f.a.h.Send(ctx, f.b2.ID, "send-remote", 4); err != nil {
		t.Fatal(err)
	}
	f.b2.ExpectData("send-remote", "4")
	if err := f.a.h.Send(ctx, "", "send-all", 5); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.all() {
		c.ExpectData("send-all", "5")
	}
	if err := f.a.h.Send(ctx, "shared", "send-room", 6); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("send-room", "6")
	f.b2.ExpectData("send-room", "6")
	f.probeAll()
}

// publishRaw publishes payload as another process would.
func publishRaw(t *testing.T, rdb *redis.Client, channel string, payload string) {
	t.Helper()
	if err := rdb.Publish(context.Background(), channel, payload).Err(); err != nil {
		t.Fatal(err)
	}
}

func envelopeJSON(t *testing.T, env protocol.Envelope) string {
	t.Helper()
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmitterAndIgnisEnvelopesAreDelivered(t *testing.T) {
	f := newFleet(t)
	rdb := f.rs.Client(t)
	// What an Ignis emitter publishes (serverId "emitter").
	publishRaw(t, rdb, protocol.ChannelRoom("shared"), envelopeJSON(t, protocol.Envelope{
		ServerID: protocol.EmitterServerID, Type: protocol.TypeRoom, Target: "shared",
		Event: "from-emitter", Data: json.RawMessage(`{"k":"v"}`),
	}))
	f.a2.ExpectData("from-emitter", `{"k":"v"}`)
	f.b2.ExpectData("from-emitter", `{"k":"v"}`)
	// What an Ignis server publishes for an unknown destination: a room
	// message whose target is a client id.
	publishRaw(t, rdb, protocol.ChannelRoom(f.b1.ID), envelopeJSON(t, protocol.Envelope{
		ServerID: "ignis-node", Type: protocol.TypeRoom, Target: f.b1.ID, Event: "to-client-id", Data: json.RawMessage(`1`),
	}))
	f.b1.ExpectData("to-client-id", "1")
	// exclude is honoured for every envelope type, users included.
	publishRaw(t, rdb, protocol.ChannelUser("u1"), envelopeJSON(t, protocol.Envelope{
		ServerID: protocol.EmitterServerID, Type: protocol.TypeUser, Target: "u1",
		Event: "user-ex", Data: json.RawMessage(`2`), Exclude: []string{f.a1.ID},
	}))
	f.b1.ExpectData("user-ex", "2")
	f.probeAll()
}

func TestOwnMessagesAreIgnored(t *testing.T) {
	f := newFleet(t)
	publishRaw(t, f.rs.Client(t), protocol.ChannelBroadcast, envelopeJSON(t, protocol.Envelope{
		ServerID: f.a.h.ServerID(), Type: protocol.TypeBroadcast, Event: "echo",
	}))
	f.b1.Expect("echo")
	f.b2.Expect("echo")
	f.probeAll()
}

func TestMalformedRedisMessagesAreDropped(t *testing.T) {
	f := newFleet(t)
	rdb := f.rs.Client(t)
	bad := []struct{ channel, payload string }{
		{protocol.ChannelBroadcast, "garbage"},
		{protocol.ChannelBroadcast, "null"},
		{protocol.ChannelBroadcast, "[1,2]"},
		{protocol.ChannelBroadcast, `{"serverId":"x","type":"broadcast"}`},
		{protocol.ChannelBroadcast, `{"serverId":"x","type":"bogus","event":"e"}`},
		{protocol.ChannelBroadcast, `{"serverId":7,"type":"broadcast","event":"e"}`},
		{protocol.ChannelBroadcast, `{"serverId":"x","type":"broadcast","event":["e"]}`},
		{protocol.ChannelBroadcast, `{"serverId":"x","type":"broadcast","event":"e","exclude":"a"}`},
		{protocol.ChannelRoom("shared"), `{"serverId":"x","type":"room","event":"e"}`},
		{protocol.ChannelUser("u1"), `{"serverId":"","type":"user","target":"u1","event":"e"}`},
		{protocol.ChannelBroadcast, `{"serverId":"x","type":"broadcast","event":"e","data":`},
	}
	for _, b := range bad {
		publishRaw(t, rdb, b.channel, b.payload)
	}
	publishRaw(t, rdb, protocol.ChannelBroadcast, envelopeJSON(t, protocol.Envelope{
		ServerID: "x", Type: protocol.TypeBroadcast, Event: "good", Data: json.RawMessage(`"ok"`),
	}))
	for _, c := range f.all() {
		c.ExpectData("good", `"ok"`)
	}
	for _, h := range []*server.Helper{f.a.h, f.b.h} {
		if got := h.Stats().RedisMalformed; got != uint64(len(bad)) {
			t.Errorf("malformed counted %d, want %d", got, len(bad))
		}
	}
}

func TestRedisRestartResumesDelivery(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()

	// Steady traffic between the instances all along: A publishes to the
	// room every few milliseconds; each call must come back promptly, with
	// or without Redis.
	stop := make(chan struct{})
	var slowest atomic.Int64
	var sent, failed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			err := f.a.h.PublishToRoom(ctx, "steady", "tick", nil)
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			sent.Add(1)
			if err != nil {
				failed.Add(1)
			}
		}
	}()
	defer func() { close(stop); <-done }()

	f.rs.Kill() // SIGKILL
	eventually(t, "outage noticed", func() bool {
		return f.a.h.Health(ctx) != nil && f.b.h.Health(ctx) != nil
	})
	// Local delivery keeps working while Redis is down; the publish error
	// is returned and counted.
	err := f.a.h.PublishToRoom(ctx, "shared", "during", 1)
	if err == nil {
		t.Error("publish during outage reported no error")
	}
	f.a2.ExpectData("during", "1")
	eventually(t, "publish errors counted", func() bool { return f.a.h.Stats().RedisPublishErrors > 0 })

	f.rs.Restart(t)
	back := time.Now()
	// Delivery across the instances resumes by itself; the wait is bounded
	// by waitTimeout (5 s).
	eventually(t, "resubscribed", func() bool {
		return f.a.h.Health(ctx) == nil && f.b.h.Health(ctx) == nil
	})
	if err := f.a.h.PublishToRoom(ctx, "shared", "after", 2); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("after", "2")
	f.b2.ExpectData("after", "2")
	recovered := time.Since(back)
	st := f.b.h.Stats()
	if st.RedisOutages == 0 || st.RedisResubscribes == 0 || st.RedisLastGap <= 0 || st.RedisDowntime < st.RedisLastGap {
		t.Errorf("outage not counted: %+v", st)
	}
	if slow := time.Duration(slowest.Load()); slow > waitTimeout {
		t.Errorf("a publish call took %v during the outage", slow)
	}
	t.Logf("delivery resumed %v after Redis was back; subscription gap %v (includes the outage); "+
		"steady publisher: %d calls, %d failed, slowest %v",
		recovered, st.RedisLastGap, sent.Load(), failed.Load(), time.Duration(slowest.Load()))
}

func TestConfigureFailsWhenRedisIsUnreachable(t *testing.T) {
	rs := redistest.Start(t)
	addr := rs.Addr()
	rs.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	h, err := server.New(server.Options{Redis: rdb, Authenticate: tokenAuth,
		Config: server.Config{RedisTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = h.Configure(context.Background())
	if err == nil {
		t.Fatal("Configure succeeded without Redis")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Configure took %v", took)
	}
	_ = h.Shutdown(context.Background())
}

func TestNewValidatesOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	noop := func(context.Context, server.HandshakeRequest) (*server.HandshakeResult, error) { return nil, nil }
	tests := []struct {
		name string
		give server.Options
		want error
	}{
		{"no redis", server.Options{Authenticate: tokenAuth}, server.ErrNoRedis},
		{"no authenticate", server.Options{Redis: rdb}, server.ErrNoAuthenticate},
		{"encryption without transformer", server.Options{Redis: rdb, Authenticate: tokenAuth,
			Config: server.Config{RequireEncryption: true}, Handshake: noop}, server.ErrEncryptionSetup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := server.New(tt.give); err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEmitterReachesEveryInstance(t *testing.T) {
	f := newFleet(t)
	em, err := emitter.New(emitter.Options{Redis: f.rs.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	testEmitterReaches(t, f, em)
}

// testEmitterReaches sends through em to every kind of target of f.
func testEmitterReaches(t *testing.T, f *fleet, em *emitter.Emitter) {
	t.Helper()
	ctx := context.Background()
	if err := em.ToRoom(ctx, "shared", "job", map[string]int{"pct": 50}); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("job", `{"pct":50}`)
	f.b2.ExpectData("job", `{"pct":50}`)
	if err := em.ToUser(ctx, "u1", "mine", 1); err != nil {
		t.Fatal(err)
	}
	f.a1.ExpectData("mine", "1")
	f.b1.ExpectData("mine", "1")
	if err := em.ToClient(ctx, f.b2.ID, "only", 2); err != nil {
		t.Fatal(err)
	}
	f.b2.ExpectData("only", "2")
	if err := em.Broadcast(ctx, "everyone", 3, f.a1.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{f.b1, f.a2, f.b2} {
		c.ExpectData("everyone", "3")
	}
	f.probeAll()
}

func TestCrossInstanceOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := startServer(t, nil, server.Options{Redis: cl.ClusterClient(t), ValidateRoom: allowAll})
	b := startServer(t, nil, server.Options{Redis: cl.ClusterClient(t), ValidateRoom: allowAll})
	ca := a.connect(t, "ua")
	cb := b.connect(t, "ub")
	ctx := context.Background()
	if err := a.h.PublishToRoom(ctx, protocol.DefaultRoom, "room", 1); err != nil {
		t.Fatal(err)
	}
	ca.ExpectData("room", "1")
	cb.ExpectData("room", "1")
	if err := a.h.PublishToUser(ctx, "ub", "user", 2); err != nil {
		t.Fatal(err)
	}
	cb.ExpectData("user", "2")
	if err := b.h.PublishToClient(ctx, ca.ID, "client", 3); err != nil {
		t.Fatal(err)
	}
	ca.ExpectData("client", "3")
	if err := b.h.PublishBroadcast(ctx, "all", 4); err != nil {
		t.Fatal(err)
	}
	ca.ExpectData("all", "4")
	cb.ExpectData("all", "4")
	ca.Probe()
	cb.Probe()
}

func TestInterestRoutingSkipsRoomsWithoutLocalMembers(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	testOnlyLocalRoomTraffic(t, f, "solo")
	// And B unsubscribes when its last member leaves.
	f.b1.Send(protocol.EventLeave, map[string]any{"rooms": []string{"solo"}})
	f.b1.Probe()
	eventually(t, "B unsubscribed from ws:room:solo", func() bool {
		n, err := f.rs.Client(t).PubSubNumSub(ctx, protocol.ChannelRoom("solo")).Result()
		return err == nil && n[protocol.ChannelRoom("solo")] == 1 // A only
	})
}

// testOnlyLocalRoomTraffic checks that instance B, with no member in room,
// receives no Redis message for it, and that it does once b1 joins.
func testOnlyLocalRoomTraffic(t *testing.T, f *fleet, room string) {
	t.Helper()
	ctx := context.Background()
	before := f.b.h.Stats().RedisReceived
	// Only a2 (on A) is in the room; B has no member.
	f.a2.Send(protocol.EventJoin, map[string]any{"rooms": []string{room}})
	f.a2.Probe()
	if err := f.a.h.PublishToRoom(ctx, room, "solo-msg", 1); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("solo-msg", "1")
	// A broadcast afterwards is B's marker: once its client has it, every
	// earlier message for B would have been received too.
	if err := f.a.h.PublishBroadcast(ctx, "marker", nil); err != nil {
		t.Fatal(err)
	}
	f.b1.Expect("marker")
	if got := f.b.h.Stats().RedisReceived - before; got != 1 {
		t.Errorf("B received %d Redis messages, want 1 (the broadcast only)", got)
	}
	// With a member on B, B subscribes to the room.
	f.b1.Send(protocol.EventJoin, map[string]any{"rooms": []string{room}})
	f.b1.Probe()
	if err := f.a.h.PublishToRoom(ctx, room, "solo-msg", 2); err != nil {
		t.Fatal(err)
	}
	f.b1.ExpectData("solo-msg", "2")
}

func TestConcurrentPublishesArePipelined(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "async"}[async], func(t *testing.T) {
			rs := redistest.Start(t)
			a := startServer(t, rs, server.Options{Config: server.Config{AsyncPublish: async}})
			b := startServer(t, rs, server.Options{})
			c := b.connect(t, "many")
			const n = 200
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- a.h.PublishToUser(context.Background(), "many", "m", i)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			for range n {
				f := c.Expect("m")
				if seen[string(f.Data)] {
					t.Fatalf("duplicate %s", f.Data)
				}
				seen[string(f.Data)] = true
			}
			c.Probe()
			if st := a.h.Stats(); st.RedisPublished != n || st.RedisPublishErrors != 0 {
				t.Errorf("published %d, errors %d", st.RedisPublished, st.RedisPublishErrors)
			}
		})
	}
}
