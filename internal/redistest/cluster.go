package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// clusterSlots is the number of hash slots of a Redis Cluster.
	clusterSlots = 16384
	// clusterTimeout bounds the wait for cluster_state:ok on every node.
	clusterTimeout = 30 * time.Second
	// minClusterMajor is the first redis-server major version with
	// --cluster-port and CLUSTER ADDSLOTSRANGE, both used here.
	minClusterMajor = 7
)

// Cluster is a Redis Cluster of masters only, one redis-server process per
// master, all on 127.0.0.1.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters redis-server processes in cluster mode, joins
// them with CLUSTER MEET, spreads the 16384 slots evenly over them and
// returns once CLUSTER INFO reports cluster_state:ok on every node. The
// processes are stopped when tb's cleanups run, also if startup fails.
// It needs redis-server 7.0 or newer.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 1 {
		tb.Fatalf("redistest: StartCluster needs at least one master, got %d", masters)
	}
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := checkClusterVersion(bin); err != nil {
		tb.Fatal(err)
	}

	c := &Cluster{nodes: make([]*Server, masters)}
	var (
		wg   sync.WaitGroup
		errs = make([]error, masters)
	)
	for i := range c.nodes {
		c.nodes[i] = newServer(tb, modeCluster)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.nodes[i].startFresh()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}

	admins := make([]*redis.Client, masters)
	for i, n := range c.nodes {
		// Protocol 2 keeps these admin connections as plain as possible;
		// they are closed before StartCluster returns.
		admins[i] = redis.NewClient(&redis.Options{Addr: n.Addr(), Protocol: 2})
		defer admins[i].Close()
	}
	if err := c.form(admins); err != nil {
		tb.Fatalf("redistest: forming a %d-node cluster on %v: %v", masters, c.Addrs(), err)
	}
	return c
}

// form joins the nodes, assigns the slots and waits for cluster_state:ok.
func (c *Cluster) form(admins []*redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()

	for i, a := range admins {
		// Distinct epochs spare the cluster the collision-resolution round
		// that nodes all starting at epoch 0 would need (redis-cli does this too).
		if err := a.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("set-config-epoch on %s: %w", c.nodes[i].Addr(), err)
		}
	}
	for _, n := range c.nodes[1:] {
		n.mu.Lock()
		port, bus := n.port, n.busPort
		n.mu.Unlock()
		// The bus port is not port+10000 here, so MEET must be told it.
		if err := admins[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port, bus).Err(); err != nil {
			return fmt.Errorf("meet %d: %w", port, err)
		}
	}
	for i, a := range admins {
		lo, hi := slotRange(i, len(admins))
		if err := a.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("addslotsrange %d-%d on %s: %w", lo, hi, c.nodes[i].Addr(), err)
		}
	}

	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := c.checkOK(ctx, admins)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w", clusterTimeout, err)
		case <-ticker.C:
		}
	}
}

// checkOK returns nil when every node reports a healthy cluster that knows
// all nodes and all slots.
func (c *Cluster) checkOK(ctx context.Context, admins []*redis.Client) error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(admins)),
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
	}
	for i, a := range admins {
		info, err := a.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("cluster info on %s: %w", c.nodes[i].Addr(), err)
		}
		got := parseInfo(info)
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("%s: %s is %q, want %q", c.nodes[i].Addr(), k, got[k], v)
			}
		}
	}
	return nil
}

// slotRange returns the inclusive slot range of node i out of n.
func slotRange(i, n int) (lo, hi int) {
	return i * clusterSlots / n, (i+1)*clusterSlots/n - 1
}

// parseInfo splits "key:value" lines of an INFO-style reply.
func parseInfo(info string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

var versionRE = regexp.MustCompile(`\bv=(\d+)\.(\d+)\.(\d+)`)

// checkClusterVersion fails unless bin is redis-server 7.0 or newer.
func checkClusterVersion(bin string) error {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("redistest: %s --version: %w", bin, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("redistest: cannot read the version in %q", strings.TrimSpace(string(out)))
	}
	if major, _ := strconv.Atoi(m[1]); major < minClusterMajor {
		return fmt.Errorf("redistest: StartCluster needs redis-server %d.0 or newer (--cluster-port, CLUSTER ADDSLOTSRANGE); %s is %s.%s.%s",
			minClusterMajor, bin, m[1], m[2], m[3])
	}
	return nil
}

// Addrs returns the "127.0.0.1:port" of every node, in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the node servers, in start order, e.g. to Kill one.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// URL returns the cluster in the redis+cluster:// form that
// helpers/redisconn.FromURL reads.
func (c *Cluster) URL() string {
	return "redis+cluster://" + strings.Join(c.Addrs(), ",")
}

// ClusterClient returns a go-redis cluster client seeded with every node,
// closed when tb's cleanups run.
func (c *Cluster) ClusterClient(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}
