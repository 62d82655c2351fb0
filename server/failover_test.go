package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

// Real failovers: a master is SIGKILLed and its replica takes over, through
// Sentinel or Redis Cluster. Each test measures how long after the kill a
// message published on A reaches B's client again.

// failoverBound is the behavioural requirement: delivery between two
// instances resumes within 10 s of the master's death.
const failoverBound = 10 * time.Second

// awaitDialersGone is registered first by the failover tests, so it runs
// after every client is closed: go-redis probes a dead node's address from
// a goroutine (pool.tryDial) that sleeps a second between attempts and
// notices a closed pool only when it wakes. Waiting here keeps
// goleak.VerifyTestMain from seeing it.
func awaitDialersGone(t *testing.T) {
	t.Cleanup(func() {
		buf := make([]byte, 1<<20)
		deadline := time.Now().Add(waitTimeout)
		for time.Now().Before(deadline) {
			if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*ConnPool).tryDial") {
				return
			}
			time.Sleep(50 * time.Millisecond) // poll interval of a bounded wait
		}
	})
}

// roomFleet is two instances with one member of room "shared" on each.
type roomFleet struct {
	a, b   *testServer
	a2, b2 *wsClient
}

func newRoomFleet(t *testing.T, node *redistest.Server, ra, rb redis.UniversalClient, cfg server.Config) *roomFleet {
	t.Helper()
	f := &roomFleet{
		a: startServer(t, node, server.Options{Redis: ra, ValidateRoom: allowAll, Config: cfg}),
		b: startServer(t, node, server.Options{Redis: rb, ValidateRoom: allowAll, Config: cfg}),
	}
	f.a2 = f.a.connect(t, "u2a")
	f.b2 = f.b.connect(t, "u2b")
	for _, c := range []*wsClient{f.a2, f.b2} {
		c.Send(protocol.EventJoin, map[string]any{"rooms": []string{"shared"}})
		c.Probe()
	}
	return f
}

// checkDelivery proves that a message from A reaches B's member of the
// room, and A's, exactly once.
func (f *roomFleet) checkDelivery(t *testing.T, event string) {
	t.Helper()
	if err := f.a.h.PublishToRoom(context.Background(), "shared", event, 0); err != nil {
		t.Fatal(err)
	}
	f.a2.ExpectData(event, "0")
	f.b2.ExpectData(event, "0")
	f.a2.Probe()
	f.b2.Probe()
}

// awaitDelivery publishes numbered probes from A to the room until B
// receives one from Redis, and returns how long after since that was. It
// fails t past failoverBound. Then it checks that B's client got the
// probes that went through in order, each once, and that the fleet is
// healthy again.
func (f *roomFleet) awaitDelivery(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	ctx := context.Background()
	base := f.b.h.Stats().RedisReceived
	var recovered time.Duration
	var sent int
	for recovered == 0 {
		if time.Since(since) > failoverBound {
			t.Fatalf("no delivery from A to B %v after the kill; A: health %v, stats %s; B: health %v, stats %s",
				time.Since(since).Round(time.Millisecond), f.a.h.Health(ctx), redisStats(f.a.h),
				f.b.h.Health(ctx), redisStats(f.b.h))
		}
		sent++
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_ = f.a.h.PublishToRoom(pctx, "shared", "probe", sent) // fails while Redis fails over
		cancel()
		// B has it when its Redis receive counter moves; a probe that is
		// not there after 200 ms is taken as lost.
		for range 20 {
			if f.b.h.Stats().RedisReceived > base {
				recovered = time.Since(since)
				break
			}
			time.Sleep(10 * time.Millisecond) // poll interval of a bounded wait
		}
	}
	// B's client got the probes that made it, in order, once each, and
	// nothing else. A's own subscription may have been on the killed node
	// too: wait until both instances are live before the last publish.
	eventually(t, "both instances live again", func() bool {
		return f.a.h.Health(ctx) == nil && f.b.h.Health(ctx) == nil
	})
	if err := f.a.h.PublishToRoom(ctx, "shared", "final", nil); err != nil {
		t.Fatalf("publish after recovery: %v", err)
	}
	for _, c := range []*wsClient{f.a2, f.b2} {
		last := 0
		for {
			fr := c.Next()
			if fr.Event == "final" {
				break
			}
			var n int
			if fr.Event != "probe" || json.Unmarshal(fr.Data, &n) != nil || n <= last || n > sent {
				t.Fatalf("after probe %d: got %s %s", last, fr.Event, fr.Data)
			}
			last = n
		}
		c.Probe()
	}
	eventually(t, "both instances healthy", func() bool {
		return f.a.h.Health(ctx) == nil && f.b.h.Health(ctx) == nil
	})
	return recovered
}

func redisStats(h *server.Helper) string {
	st := h.Stats()
	return fmt.Sprintf("{outages %d resubscribes %d published %d publishErrors %d received %d lastGap %v}",
		st.RedisOutages, st.RedisResubscribes, st.RedisPublished, st.RedisPublishErrors, st.RedisReceived, st.RedisLastGap)
}

func TestFailoverSentinel(t *testing.T) {
	t.Parallel()
	awaitDialersGone(t)
	g := redistest.StartSentinelGroup(t, "wsmaster", redistest.SentinelGroupOptions{
		Replicas: 1, Sentinels: 3, DownAfter: time.Second, FailoverTimeout: 5 * time.Second,
	})
	f := newRoomFleet(t, g.Master, g.FailoverClient(t), g.FailoverClient(t), server.Config{})
	f.checkDelivery(t, "before")

	g.Master.Kill() // SIGKILL
	killed := time.Now()
	recovered := f.awaitDelivery(t, killed)
	addr, err := g.MasterAddr(context.Background())
	if err != nil || addr != g.Replicas[0].Addr() {
		t.Errorf("master is %s (%v), want the replica %s", addr, err, g.Replicas[0].Addr())
	}
	f.checkDelivery(t, "after")
	t.Logf("Sentinel failover (down-after 1 s): delivery A→B resumed %v after the master's SIGKILL (bound %v); "+
		"B's counted gap %v", recovered.Round(time.Millisecond), failoverBound, f.b.h.Stats().RedisLastGap)
}

// startFailoverCluster is 3 masters with a replica each and a 1 s node
// timeout.
func startFailoverCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	return redistest.StartClusterWith(t, redistest.ClusterOptions{
		Masters: 3, ReplicasPerMaster: 1, NodeTimeout: time.Second,
	})
}

// clusterClient is the cluster client an instance is given: go-redis'
// defaults, named so that CLIENT LIST shows whose connection is whose.
func clusterClient(t *testing.T, cl *redistest.Cluster, name string) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClientName: name})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// subscriberNode returns the cluster master on which the client named
// name holds a (non-sharded) subscription.
func subscriberNode(t *testing.T, cl *redistest.Cluster, name string) *redistest.Server {
	t.Helper()
	for _, n := range cl.Nodes() {
		list, err := n.Client(t).ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(list) {
			if strings.Contains(line, " name="+name+" ") && !strings.Contains(line, " sub=0 ") {
				return n
			}
		}
	}
	t.Fatalf("no node holds %s's subscription", name)
	return nil
}

// nodeAt returns the node of cl at addr.
func nodeAt(t *testing.T, cl *redistest.Cluster, addr string) *redistest.Server {
	t.Helper()
	for _, n := range cl.Nodes() {
		if n.Addr() == addr {
			return n
		}
	}
	t.Fatalf("no node at %s", addr)
	return nil
}

func TestFailoverClusterInterest(t *testing.T) {
	t.Parallel()
	awaitDialersGone(t)
	cl := startFailoverCluster(t)
	f := newRoomFleet(t, cl.Nodes()[0], clusterClient(t, cl, "wsA"), clusterClient(t, cl, "wsB"), server.Config{})
	f.checkDelivery(t, "before")

	victim := subscriberNode(t, cl, "wsB") // B's subscription dies with it
	victim.Kill()
	killed := time.Now()
	recovered := f.awaitDelivery(t, killed)
	f.checkDelivery(t, "after")
	t.Logf("cluster failover, interest routing (node timeout 1 s): delivery A→B resumed %v after SIGKILL of "+
		"the master holding B's subscription (bound %v); B's counted gap %v",
		recovered.Round(time.Millisecond), failoverBound, f.b.h.Stats().RedisLastGap)
}
