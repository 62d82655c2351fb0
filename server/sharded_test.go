package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/emitter"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// shardedFleet is a fleet of two sharded instances on a 3-master cluster.
type shardedFleet struct {
	*fleet
	cl *redistest.Cluster
	cc *redis.ClusterClient // the test's own view of the cluster
}

func newShardedFleet(t *testing.T) *shardedFleet {
	t.Helper()
	cl := redistest.StartCluster(t, 3)
	sf := &shardedFleet{fleet: &fleet{}, cl: cl, cc: cl.ClusterClient(t)}
	f := sf.fleet
	// startServer's Redis argument only fills in a missing Options.Redis.
	node := cl.Nodes()[0]
	for _, ts := range []**testServer{&f.a, &f.b} {
		*ts = startServer(t, node, server.Options{Redis: cl.ClusterClient(t), ValidateRoom: allowAll,
			Config: server.Config{RedisRouting: server.RoutingSharded}})
	}
	f.a1 = f.a.connect(t, "u1")
	f.b1 = f.b.connect(t, "u1")
	f.a2 = f.a.connect(t, "u2a")
	f.b2 = f.b.connect(t, "u2b")
	for _, c := range []*wsClient{f.a2, f.b2} {
		c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"shared"}})
		c.Probe()
	}
	return sf
}

// master returns the address of the master serving channel's slot.
func (sf *shardedFleet) master(t *testing.T, channel string) string {
	t.Helper()
	c, err := sf.cc.MasterForKey(context.Background(), channel)
	if err != nil {
		t.Fatalf("master of %s: %v", channel, err)
	}
	return c.Options().Addr
}

// shardSubscribers is the number of SSUBSCRIBE subscribers of channel on
// the node at addr.
func (sf *shardedFleet) shardSubscribers(t *testing.T, addr, channel string) int64 {
	t.Helper()
	for _, n := range sf.cl.Nodes() {
		if n.Addr() == addr {
			got, err := n.Client(t).PubSubShardNumSub(context.Background(), channel).Result()
			if err != nil {
				return -1
			}
			return got[channel]
		}
	}
	t.Fatalf("no node at %s", addr)
	return 0
}

// roomsByMaster returns perMaster room names for every master: names whose
// ws:room channels hash to slots on that master.
func (sf *shardedFleet) roomsByMaster(t *testing.T, perMaster int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	full := 0
	for i := 0; full < len(sf.cl.Nodes()); i++ {
		if i > 10000 {
			t.Fatalf("no %d rooms per master among %d names: %v", perMaster, i, out)
		}
		room := fmt.Sprintf("r%d", i)
		addr := sf.master(t, protocol.ChannelRoom(room))
		if len(out[addr]) < perMaster {
			out[addr] = append(out[addr], room)
			if len(out[addr]) == perMaster {
				full++
			}
		}
	}
	return out
}

func TestShardedCrossInstanceDeliveryExactlyOnce(t *testing.T) {
	testCrossInstance(t, newShardedFleet(t).fleet)
}

func TestShardedRoutingSkipsRoomsWithoutLocalMembers(t *testing.T) {
	sf := newShardedFleet(t)
	f := sf.fleet
	ctx := context.Background()
	// The room's channel is on ws:broadcast's master, so that the
	// broadcast below, on the same node, is a marker for B: once its
	// client has it, every earlier message for B would have come too.
	bcMaster := sf.master(t, protocol.ChannelBroadcast)
	solo := ""
	for i := 0; solo == ""; i++ {
		if r := fmt.Sprintf("solo%d", i); sf.master(t, protocol.ChannelRoom(r)) == bcMaster {
			solo = r
		}
	}
	testOnlyLocalRoomTraffic(t, f, solo)
	for _, c := range []*wsClient{f.a1, f.b2} {
		c.Expect("marker")
	}
	f.a2.Expect("marker")
	f.a2.ExpectData("solo-msg", "2")
	f.probeAll()
	// And it unsubscribes when the last member leaves.
	f.b1.Send(protocol.EventLeave, map[string]any{"rooms": []string{solo}})
	f.b1.Probe()
	ch := protocol.ChannelRoom(solo)
	eventually(t, "B sunsubscribed from "+ch, func() bool {
		return sf.shardSubscribers(t, bcMaster, ch) == 1 // A only
	})
	if err := f.a.h.Health(ctx); err != nil {
		t.Errorf("A health: %v", err)
	}
	if err := f.b.h.Health(ctx); err != nil {
		t.Errorf("B health: %v", err)
	}
}

func TestShardedChannelsOnDifferentMasters(t *testing.T) {
	sf := newShardedFleet(t)
	f := sf.fleet
	ctx := context.Background()
	byMaster := sf.roomsByMaster(t, 1)
	if len(byMaster) != 3 {
		t.Fatalf("rooms on %d masters, want 3", len(byMaster))
	}
	var rooms []string
	for addr, rs := range byMaster {
		t.Logf("room %s is on %s", rs[0], addr)
		rooms = append(rooms, rs[0])
	}
	f.b2.Send(protocol.EventJoin, map[string]any{"rooms": rooms})
	f.b2.Probe()
	for addr, rs := range byMaster {
		if n := sf.shardSubscribers(t, addr, protocol.ChannelRoom(rs[0])); n != 1 {
			t.Errorf("%s on %s has %d shard subscribers, want 1 (B)", rs[0], addr, n)
		}
	}
	for i, r := range rooms {
		if err := f.a.h.PublishToRoom(ctx, r, "on-"+r, i); err != nil {
			t.Fatal(err)
		}
		f.b2.ExpectData("on-"+r, fmt.Sprint(i))
	}
	f.probeAll()
}

func TestShardedResubscribesAfterConnectionsAreKilled(t *testing.T) {
	sf := newShardedFleet(t)
	f := sf.fleet
	ctx := context.Background()
	// Two rooms per master: go-redis resubscribes a PubSub's channels in one
	// SSUBSCRIBE, which the cluster refuses when they span slots.
	var rooms []string
	for _, rs := range sf.roomsByMaster(t, 2) {
		rooms = append(rooms, rs...)
	}
	f.b2.Send(protocol.EventJoin, map[string]any{"rooms": rooms})
	f.b2.Probe()
	for _, n := range sf.cl.Nodes() {
		if err := n.Client(t).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatalf("client kill on %s: %v", n.Addr(), err)
		}
	}
	wanted := []string{protocol.ChannelBroadcast, protocol.ChannelUser("u2b"), protocol.ChannelClient(f.b2.ID)}
	for _, r := range append(rooms, "shared") {
		wanted = append(wanted, protocol.ChannelRoom(r))
	}
	eventually(t, "B subscribed again to all its channels", func() bool {
		for _, ch := range wanted {
			if sf.shardSubscribers(t, sf.master(t, ch), ch) < 1 {
				return false
			}
		}
		return true
	})
	eventually(t, "both healthy", func() bool {
		return f.a.h.Health(ctx) == nil && f.b.h.Health(ctx) == nil
	})
	if st := f.b.h.Stats(); st.RedisOutages == 0 || st.RedisResubscribes == 0 {
		t.Errorf("outage not counted: outages %d, resubscribes %d", st.RedisOutages, st.RedisResubscribes)
	}
	for i, r := range rooms {
		if err := f.a.h.PublishToRoom(ctx, r, "after", i); err != nil {
			t.Fatal(err)
		}
		f.b2.ExpectData("after", fmt.Sprint(i))
	}
	if err := f.a.h.PublishToUser(ctx, "u2b", "user", 1); err != nil {
		t.Fatal(err)
	}
	f.b2.ExpectData("user", "1")
	f.probeAll()
}

func TestShardedFollowsAMovedSlot(t *testing.T) {
	sf := newShardedFleet(t)
	f := sf.fleet
	ctx := context.Background()
	ch := protocol.ChannelRoom("shared")
	src := sf.master(t, ch)
	if src == sf.master(t, protocol.ChannelBroadcast) {
		t.Log("ws:room:shared and ws:broadcast share a master")
	}
	nodes := map[string]*redis.Client{}
	ids := map[string]string{}
	var dst string
	for _, n := range sf.cl.Nodes() {
		c := n.Client(t)
		nodes[n.Addr()] = c
		id, err := c.ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids[n.Addr()] = id
		if n.Addr() != src && dst == "" {
			dst = n.Addr()
		}
	}
	slot, err := sf.cc.ClusterKeySlot(ctx, ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The slot holds no keys, so moving it is the three SETSLOTs redis-cli
	// would send around its MIGRATE calls.
	steps := []struct {
		addr string
		args []any
	}{
		{dst, []any{"cluster", "setslot", slot, "importing", ids[src]}},
		{src, []any{"cluster", "setslot", slot, "migrating", ids[dst]}},
		{dst, []any{"cluster", "setslot", slot, "node", ids[dst]}},
		{src, []any{"cluster", "setslot", slot, "node", ids[dst]}},
	}
	for addr := range nodes {
		if addr != src && addr != dst {
			steps = append(steps, struct {
				addr string
				args []any
			}{addr, []any{"cluster", "setslot", slot, "node", ids[dst]}})
		}
	}
	for _, s := range steps {
		if err := nodes[s.addr].Do(ctx, s.args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", s.args, s.addr, err)
		}
	}
	t.Logf("moved slot %d of %s from %s to %s", slot, ch, src, dst)
	eventually(t, "both instances subscribed on the new master", func() bool {
		return sf.shardSubscribers(t, dst, ch) == 2
	})
	if err := f.a.h.PublishToRoom(ctx, "shared", "moved", 1); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("moved", "1")
	f.b2.ExpectData("moved", "1")
	if err := f.b.h.PublishToRoom(ctx, "shared", "moved", 2); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData("moved", "2")
	f.b2.ExpectData("moved", "2")
	f.probeAll()
}

func TestNewRefusesShardedWithoutCluster(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	_, err := server.New(server.Options{Redis: rdb, Authenticate: tokenAuth,
		Config: server.Config{RedisRouting: server.RoutingSharded}})
	if !errors.Is(err, server.ErrShardedNeedsCluster) {
		t.Fatalf("got %v, want ErrShardedNeedsCluster", err)
	}
	if want := "server: RedisRouting sharded needs a Redis Cluster client (redis.ClusterClient)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := server.New(server.Options{Redis: rdb, Authenticate: tokenAuth,
		Config: server.Config{RedisRouting: "bogus"}}); err == nil {
		t.Error("unknown routing accepted")
	}
}

func TestShardedEmitterReachesShardedInstances(t *testing.T) {
	sf := newShardedFleet(t)
	em, err := emitter.New(emitter.Options{Redis: sf.cc, Sharded: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	testEmitterReaches(t, sf.fleet, em)
}

func TestShardedConfigureFailsWhenClusterIsUnreachable(t *testing.T) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, MaxRetries: -1})
	t.Cleanup(func() { _ = cc.Close() })
	h, err := server.New(server.Options{Redis: cc, Authenticate: tokenAuth,
		Config: server.Config{RedisRouting: server.RoutingSharded, RedisTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.Configure(context.Background()); err == nil {
		t.Fatal("Configure succeeded without Redis")
	} else if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the cluster", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Configure took %v", took)
	}
	if err := h.Health(context.Background()); err == nil {
		t.Error("healthy after a failed Configure")
	}
	_ = h.Shutdown(context.Background())
}
