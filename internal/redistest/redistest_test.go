package redistest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// shared is the StartMain server of this test binary.
var shared *Server

func TestMain(m *testing.M) {
	srv, err := StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = srv
	code := m.Run()
	srv.Stop()
	if code == 0 {
		if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "StartMain temp dir %s still there after Stop (stat: %v)\n", srv.dir, err)
			code = 1
		}
		if err := pingOnce(srv.Addr()); err == nil {
			fmt.Fprintln(os.Stderr, "StartMain server still answers after Stop")
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func TestStartMainShared(t *testing.T) {
	ctx := testContext(t)
	if err := shared.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING shared server: %v", err)
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := Start(t)

	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:port", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil || opt.Addr != s.Addr() || opt.DB != 0 {
		t.Errorf("redis.ParseURL(URL()) = %+v, %v; want addr %s db 0", opt, err, s.Addr())
	}

	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}

	// No persistence: nothing may touch the disk between tests.
	for _, tt := range []struct {
		give string
		want string
	}{
		{give: "save", want: ""},
		{give: "appendonly", want: "no"},
		{give: "bind", want: "127.0.0.1"},
	} {
		got, err := c.ConfigGet(ctx, tt.give).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", tt.give, err)
		}
		if got[tt.give] != tt.want {
			t.Errorf("CONFIG GET %s = %q, want %q", tt.give, got[tt.give], tt.want)
		}
	}
}

func TestStartStopsOnCleanup(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("owner", func(t *testing.T) {
		s := Start(t)
		addr = s.Addr()
		if err := pingOnce(addr); err != nil {
			t.Fatalf("PING while running: %v", err)
		}
	})
	if err := pingOnce(addr); err == nil {
		t.Fatalf("server on %s still answers after its test's cleanup", addr)
	}
}

func TestServersGetDistinctPorts(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on one address %s", a.Addr())
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := Start(t)
	addr := s.Addr()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Kill()
	if err := pingOnce(addr); err == nil {
		t.Fatal("server answers PING after Kill")
	}
	s.Kill() // killing a dead server is a no-op

	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	// The old client reconnects on its own; the data is gone (no persistence).
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET after restart = %v, want redis.Nil", err)
	}

	// Restart on a running server kills it first.
	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second restart: %v", err)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Stop()
	s.Stop()
	if err := pingOnce(s.Addr()); err == nil {
		t.Fatal("server answers PING after Stop")
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	master := Start(t)
	sentinel := StartSentinel(t, master, "mymaster")

	got, err := sentinel.Client(t).Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster").StringSlice()
	if err != nil {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	if addr := got[0] + ":" + got[1]; addr != master.Addr() {
		t.Fatalf("sentinel names master %s, want %s", addr, master.Addr())
	}

	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{sentinel.Addr()},
	})
	t.Cleanup(func() { _ = fc.Close() })
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through sentinel: %v", err)
	}
	if got, err := master.Client(t).Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET on master = %q, %v; want v", got, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := StartCluster(t, 3)

	addrs := c.Addrs()
	if len(addrs) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs() = %v, Nodes() has %d; want 3 each", addrs, len(c.Nodes()))
	}
	if want := "redis+cluster://" + strings.Join(addrs, ","); c.URL() != want {
		t.Errorf("URL() = %q, want %q", c.URL(), want)
	}

	cc := c.ClusterClient(t)
	// Enough keys to land on every master.
	for i := range 50 {
		k := "key-" + strconv.Itoa(i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	for _, n := range c.Nodes() {
		size, err := n.Client(t).DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.Addr(), err)
		}
		if size == 0 {
			t.Errorf("node %s holds no key: slots not spread", n.Addr())
		}
	}

	// Cluster-wide Pub/Sub, what the WebSocket servers rely on.
	sub := cc.Subscribe(ctx, "ws:broadcast")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := cc.Publish(ctx, "ws:broadcast", "hello").Err(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("ReceiveMessage = %v, %v; want hello", msg, err)
	}
}

func TestClusterOneMaster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := StartCluster(t, 1)
	if err := c.ClusterClient(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on a one-node cluster: %v", err)
	}
}

func TestSlotRange(t *testing.T) {
	for n := 1; n <= 7; n++ {
		next := 0
		for i := range n {
			lo, hi := slotRange(i, n)
			if lo != next || hi < lo {
				t.Fatalf("n=%d node %d: range %d-%d, want it to start at %d", n, i, lo, hi, next)
			}
			next = hi + 1
		}
		if next != clusterSlots {
			t.Fatalf("n=%d: slots end at %d, want %d", n, next, clusterSlots)
		}
	}
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		give string
		want map[string]string
	}{
		{give: "", want: map[string]string{}},
		{
			give: "cluster_state:ok\r\ncluster_slots_ok:16384\r\n",
			want: map[string]string{"cluster_state": "ok", "cluster_slots_ok": "16384"},
		},
		{
			give: "# Section\r\nkey:a:b\r\n",
			want: map[string]string{"key": "a:b"},
		},
	}
	for _, tt := range tests {
		got := parseInfo(tt.give)
		if len(got) != len(tt.want) {
			t.Errorf("parseInfo(%q) = %v, want %v", tt.give, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("parseInfo(%q)[%q] = %q, want %q", tt.give, k, got[k], v)
			}
		}
	}
}

func TestVersionRE(t *testing.T) {
	tests := []struct {
		give string
		want string // major, or "" for no match
	}{
		{give: "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64", want: "7"},
		{give: "Redis server v=8.2.1 sha=1", want: "8"},
		{give: "Redis server v=6.2.6 sha=1", want: "6"},
		{give: "garbage", want: ""},
	}
	for _, tt := range tests {
		m := versionRE.FindStringSubmatch(tt.give)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("major of %q = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestFailoverSentinelGroup(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	g := StartSentinelGroup(t, "mymaster", SentinelGroupOptions{})
	if len(g.Replicas) != 1 || len(g.Sentinels) != 3 {
		t.Fatalf("%d replicas, %d sentinels; want 1 and 3", len(g.Replicas), len(g.Sentinels))
	}
	fc := g.FailoverClient(t)
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	g.Master.Kill()
	err := pollUntil(20*time.Second, func(ctx context.Context) error {
		addr, err := g.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if addr != g.Replicas[0].Addr() {
			return fmt.Errorf("master is %s, want %s", addr, g.Replicas[0].Addr())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no failover: %v", err)
	}
	err = pollUntil(20*time.Second, func(ctx context.Context) error {
		return fc.Set(ctx, "k", "w", 0).Err()
	})
	if err != nil {
		t.Fatalf("SET after the failover: %v", err)
	}
	if got, err := g.Replicas[0].Client(t).Get(ctx, "k").Result(); err != nil || got != "w" {
		t.Fatalf("GET on the new master = %q, %v; want w", got, err)
	}
	if !strings.HasPrefix(g.URL(), "redis+sentinel://") {
		t.Errorf("URL %s", g.URL())
	}
}

func TestFailoverClusterWithReplicas(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := StartClusterWith(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: time.Second})
	nodes := c.Nodes()
	if len(nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(nodes))
	}
	for i, n := range nodes {
		info, err := n.Client(t).Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		role := parseInfo(info)["role"]
		if want := map[bool]string{true: "master", false: "slave"}[i < 3]; role != want {
			t.Errorf("node %d (%s) is %s, want %s", i, n.Addr(), role, want)
		}
	}
	cc := c.ClusterClient(t)
	if err := cc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := cc.MasterForKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	addr := m.Options().Addr
	for _, n := range nodes[:3] {
		if n.Addr() == addr {
			n.Kill()
		}
	}
	// go-redis learns of the failover from a MOVED reply or a reload of
	// the slot map, which ReloadState asks for.
	err = pollUntil(20*time.Second, func(ctx context.Context) error {
		cc.ReloadState(ctx)
		m, err := cc.MasterForKey(ctx, "k")
		if err != nil {
			return err
		}
		if m.Options().Addr == addr {
			return fmt.Errorf("master of k is still %s", addr)
		}
		return cc.Set(ctx, "k", "w", 0).Err()
	})
	if err != nil {
		t.Fatalf("SET after killing master %s: %v", addr, err)
	}
}
