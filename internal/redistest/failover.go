package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Real failovers: a master with replicas watched by a group of Sentinels
// (StartSentinelGroup), and a Redis Cluster whose masters have replicas
// (StartClusterWith). Both use short timeouts so that a test can SIGKILL a
// master and see the failover within seconds.

// StartReplica starts a standalone redis-server replicating master and
// stops it when tb's cleanups run. It returns once the replica's link to
// the master is up.
func StartReplica(tb testing.TB, master *Server) *Server {
	tb.Helper()
	host, port, err := net.SplitHostPort(master.Addr())
	if err != nil {
		tb.Fatal(err)
	}
	s := newServer(tb, modeStandalone)
	s.password = master.password
	s.extra = []string{"--replicaof", host, port}
	if master.password != "" {
		s.extra = append(s.extra, "--masterauth", master.password)
	}
	if err := s.startFresh(); err != nil {
		tb.Fatal(err)
	}
	c := s.Client(tb)
	err = pollUntil(startTimeout, func(ctx context.Context) error {
		return replicaLinkUp(ctx, c)
	})
	if err != nil {
		tb.Fatalf("redistest: replica on %s of %s: %v", s.Addr(), master.Addr(), err)
	}
	return s
}

// replicaLinkUp returns nil when c's server is a replica whose link to its
// master is up.
func replicaLinkUp(ctx context.Context, c *redis.Client) error {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	got := parseInfo(info)
	if got["role"] != "slave" || got["master_link_status"] != "up" {
		return fmt.Errorf("role %q, master_link_status %q", got["role"], got["master_link_status"])
	}
	return nil
}

// SentinelGroupOptions configure StartSentinelGroup. The zero value is
// one replica, three Sentinels with a quorum of two, and timeouts short
// enough for a failover in a few seconds.
type SentinelGroupOptions struct {
	// Replicas is the number of replicas of the master. Default 1.
	Replicas int
	// Sentinels is the number of Sentinels. Default 3.
	Sentinels int
	// Quorum is how many Sentinels must agree that the master is down.
	// Default: a majority of Sentinels.
	Quorum int
	// DownAfter is sentinel down-after-milliseconds: the silence after
	// which a Sentinel deems the master down. Default 1 s (Redis: 30 s).
	DownAfter time.Duration
	// FailoverTimeout is sentinel failover-timeout. Default 5 s (Redis:
	// 3 min).
	FailoverTimeout time.Duration
}

// SentinelGroup is a master, its replicas and the Sentinels watching them,
// all real processes on 127.0.0.1.
type SentinelGroup struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Master is the master the group started with; after a failover one
	// of the Replicas is master instead (see MasterAddr).
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
}

// StartSentinelGroup starts a master, its replicas and a group of
// Sentinels monitoring it under masterName, and stops them all when tb's
// cleanups run. It returns once every Sentinel knows every replica (link
// up) and every other Sentinel, so that a failover can start at once.
func StartSentinelGroup(tb testing.TB, masterName string, opts SentinelGroupOptions) *SentinelGroup {
	tb.Helper()
	if masterName == "" {
		tb.Fatal("redistest: StartSentinelGroup needs a master name")
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Sentinels <= 0 {
		opts.Sentinels = 3
	}
	if opts.Quorum <= 0 {
		opts.Quorum = opts.Sentinels/2 + 1
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 5 * time.Second
	}
	g := &SentinelGroup{MasterName: masterName, Master: Start(tb)}
	for range opts.Replicas {
		g.Replicas = append(g.Replicas, StartReplica(tb, g.Master))
	}
	conf := []string{
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", masterName, opts.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", masterName, opts.FailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", masterName),
	}
	g.Sentinels = make([]*Server, opts.Sentinels)
	var (
		wg   sync.WaitGroup
		errs = make([]error, opts.Sentinels)
	)
	for i := range g.Sentinels {
		s := newServer(tb, modeSentinel)
		s.masterName = masterName
		s.masterAddr = g.Master.Addr()
		s.quorum = opts.Quorum
		s.sentinelConf = conf
		g.Sentinels[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.startFresh()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	for _, s := range g.Sentinels {
		c := s.Client(tb)
		err := pollUntil(clusterTimeout, func(ctx context.Context) error {
			return g.sentinelReady(ctx, c, opts.Replicas, opts.Sentinels-1)
		})
		if err != nil {
			tb.Fatalf("redistest: sentinel on %s is not ready: %v", s.Addr(), err)
		}
	}
	return g
}

// sentinelReady returns nil when c's Sentinel sees the master up with
// replicas replicas linked and others other Sentinels.
func (g *SentinelGroup) sentinelReady(ctx context.Context, c *redis.Client, replicas, others int) error {
	m, err := c.Do(ctx, "SENTINEL", "MASTER", g.MasterName).Result()
	if err != nil {
		return err
	}
	info := toStringMap(m)
	if info["flags"] != "master" || info["num-slaves"] != strconv.Itoa(replicas) ||
		info["num-other-sentinels"] != strconv.Itoa(others) {
		return fmt.Errorf("master flags %q, %s replicas (want %d), %s other sentinels (want %d)",
			info["flags"], info["num-slaves"], replicas, info["num-other-sentinels"], others)
	}
	rs, err := c.Do(ctx, "SENTINEL", "REPLICAS", g.MasterName).Slice()
	if err != nil {
		return err
	}
	for _, r := range rs {
		ri := toStringMap(r)
		if ri["flags"] != "slave" || ri["master-link-status"] != "ok" {
			return fmt.Errorf("replica %s:%s flags %q, link %q", ri["ip"], ri["port"], ri["flags"], ri["master-link-status"])
		}
	}
	return nil
}

// toStringMap turns a RESP2 flat array or a RESP3 map reply into a map.
func toStringMap(v any) map[string]string {
	out := map[string]string{}
	switch x := v.(type) {
	case map[any]any:
		for k, v := range x {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	case []any:
		for i := 0; i+1 < len(x); i += 2 {
			out[fmt.Sprint(x[i])] = fmt.Sprint(x[i+1])
		}
	}
	return out
}

// SentinelAddrs returns the Sentinels' "127.0.0.1:port" addresses.
func (g *SentinelGroup) SentinelAddrs() []string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL returns the group in the redis+sentinel:// form that
// helpers/redisconn.FromURL reads.
func (g *SentinelGroup) URL() string {
	return "redis+sentinel://" + strings.Join(g.SentinelAddrs(), ",") + "/" + g.MasterName
}

// FailoverClient returns a go-redis client that finds the master through
// the Sentinels and follows failovers, closed when tb's cleanups run.
func (g *SentinelGroup) FailoverClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    g.MasterName,
		SentinelAddrs: g.SentinelAddrs(),
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr returns the master's address as the first Sentinel that
// answers reports it.
func (g *SentinelGroup) MasterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, s := range g.Sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1})
		got, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.MasterName).StringSlice()
		_ = c.Close()
		if err == nil && len(got) == 2 {
			return net.JoinHostPort(got[0], got[1]), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("redistest: no sentinel names the master: %w", errors.Join(errs...))
}

// ClusterOptions configure StartClusterWith.
type ClusterOptions struct {
	// Masters is the number of masters; the slots are spread evenly over
	// them. Default 3.
	Masters int
	// ReplicasPerMaster is the number of replicas of each master.
	// Default 0.
	ReplicasPerMaster int
	// NodeTimeout is --cluster-node-timeout: how long a node may be
	// unreachable before it is failed over. Default 2 s.
	NodeTimeout time.Duration
}

// StartClusterWith starts a Redis Cluster configured by opts, like
// StartCluster, and returns once every node reports cluster_state:ok and
// every replica's link to its master is up. Nodes lists the masters first
// (in slot order), then the replicas: node Masters*(k+1)+i is the k-th
// replica of master i.
func StartClusterWith(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.Masters <= 0 {
		opts.Masters = 3
	}
	if opts.ReplicasPerMaster < 0 {
		tb.Fatalf("redistest: StartClusterWith: %d replicas per master", opts.ReplicasPerMaster)
	}
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	if err := checkClusterVersion(bin); err != nil {
		tb.Fatal(err)
	}
	total := opts.Masters * (1 + opts.ReplicasPerMaster)
	c := &Cluster{nodes: make([]*Server, total)}
	var (
		wg   sync.WaitGroup
		errs = make([]error, total)
	)
	for i := range c.nodes {
		c.nodes[i] = newServer(tb, modeCluster)
		c.nodes[i].nodeTimeout = opts.NodeTimeout
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
	admins := make([]*redis.Client, total)
	for i, n := range c.nodes {
		admins[i] = redis.NewClient(&redis.Options{Addr: n.Addr(), Protocol: 2})
		defer admins[i].Close()
	}
	if err := c.formWithReplicas(admins, opts.Masters); err != nil {
		tb.Fatalf("redistest: forming a cluster of %d masters and %d replicas on %v: %v",
			opts.Masters, total-opts.Masters, c.Addrs(), err)
	}
	return c
}

// formWithReplicas joins the nodes, gives the slots to the first masters
// nodes, makes node masters+k*masters+i a replica of master i and waits
// until the cluster is ok and every replica is linked.
func (c *Cluster) formWithReplicas(admins []*redis.Client, masters int) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for i, a := range admins {
		if err := a.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("set-config-epoch on %s: %w", c.nodes[i].Addr(), err)
		}
	}
	for _, n := range c.nodes[1:] {
		n.mu.Lock()
		port, bus := n.port, n.busPort
		n.mu.Unlock()
		if err := admins[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port, bus).Err(); err != nil {
			return fmt.Errorf("meet %d: %w", port, err)
		}
	}
	ids := make([]string, len(admins))
	for i, a := range admins {
		id, err := a.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("cluster myid on %s: %w", c.nodes[i].Addr(), err)
		}
		ids[i] = id
	}
	for i, a := range admins[:masters] {
		lo, hi := slotRange(i, masters)
		if err := a.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("addslotsrange %d-%d on %s: %w", lo, hi, c.nodes[i].Addr(), err)
		}
	}
	// A replica can only follow a master it knows: replicate once every
	// node knows every other.
	err := pollUntil(clusterTimeout, func(ctx context.Context) error {
		for i, a := range admins {
			info, err := a.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if got := parseInfo(info)["cluster_known_nodes"]; got != strconv.Itoa(len(admins)) {
				return fmt.Errorf("%s knows %s nodes, want %d", c.nodes[i].Addr(), got, len(admins))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := masters; i < len(admins); i++ {
		master := ids[(i-masters)%masters]
		err := pollUntil(clusterTimeout, func(ctx context.Context) error {
			return admins[i].Do(ctx, "CLUSTER", "REPLICATE", master).Err()
		})
		if err != nil {
			return fmt.Errorf("cluster replicate on %s: %w", c.nodes[i].Addr(), err)
		}
	}
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(admins)),
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
	}
	return pollUntil(clusterTimeout, func(ctx context.Context) error {
		for i, a := range admins {
			info, err := a.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			got := parseInfo(info)
			for k, v := range want {
				if got[k] != v {
					return fmt.Errorf("%s: %s is %q, want %q", c.nodes[i].Addr(), k, got[k], v)
				}
			}
			if i >= masters {
				if err := replicaLinkUp(ctx, a); err != nil {
					return fmt.Errorf("%s: %w", c.nodes[i].Addr(), err)
				}
			}
		}
		return nil
	})
}
