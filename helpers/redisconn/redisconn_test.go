package redisconn

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// summary flattens a config into the fields these tests care about.
type summary struct {
	Kind             string
	Network          string
	Addrs            []string
	Username         string
	Password         string
	SentinelUsername string
	SentinelPassword string
	MasterName       string
	DB               int
	TLS              bool
	ServerName       string
	SkipVerify       bool
	DialTimeout      time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	PoolSize         int
}

func summarize(cfg config) summary {
	switch cfg.kind {
	case kindCluster:
		o := cfg.cluster
		s := summary{Kind: "cluster", Addrs: o.Addrs, Username: o.Username, Password: o.Password,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize}
		if o.TLSConfig != nil {
			s.TLS, s.ServerName, s.SkipVerify = true, o.TLSConfig.ServerName, o.TLSConfig.InsecureSkipVerify
		}
		return s
	case kindSentinel:
		o := cfg.failover
		s := summary{Kind: "sentinel", Addrs: o.SentinelAddrs, Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword, MasterName: o.MasterName,
			DB: o.DB, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize}
		if o.TLSConfig != nil {
			s.TLS, s.ServerName, s.SkipVerify = true, o.TLSConfig.ServerName, o.TLSConfig.InsecureSkipVerify
		}
		return s
	default:
		o := cfg.single
		s := summary{Kind: "single", Network: o.Network, Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password,
			DB: o.DB, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize}
		if o.TLSConfig != nil {
			s.TLS, s.ServerName, s.SkipVerify = true, o.TLSConfig.ServerName, o.TLSConfig.InsecureSkipVerify
		}
		return s
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		name string
		give string
		want summary
	}{
		{
			name: "single node",
			give: "redis://127.0.0.1:6379/0",
			want: summary{Kind: "single", Network: "tcp", Addrs: []string{"127.0.0.1:6379"}},
		},
		{
			name: "defaults host and port",
			give: "redis://",
			want: summary{Kind: "single", Network: "tcp", Addrs: []string{"localhost:6379"}},
		},
		{
			name: "credentials db and options",
			give: "redis://alice:p%40ss@cache:7000/3?dial_timeout=2s&pool_size=7",
			want: summary{Kind: "single", Network: "tcp", Addrs: []string{"cache:7000"}, Username: "alice", Password: "p@ss",
				DB: 3, DialTimeout: 2 * time.Second, PoolSize: 7},
		},
		{
			name: "tls",
			give: "rediss://cache.example.com:6380?skip_verify=true",
			want: summary{Kind: "single", Network: "tcp", Addrs: []string{"cache.example.com:6380"},
				TLS: true, ServerName: "cache.example.com", SkipVerify: true},
		},
		{
			name: "unix socket",
			give: "unix:///run/redis.sock?db=2",
			want: summary{Kind: "single", Network: "unix", Addrs: []string{"/run/redis.sock"}, DB: 2},
		},
		{
			name: "cluster",
			give: "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002",
			want: summary{Kind: "cluster", Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}},
		},
		{
			name: "cluster with credentials default port and options",
			give: "redis+cluster://u:p@h1:7000,h2/?read_timeout=3s&max_redirects=2",
			want: summary{Kind: "cluster", Addrs: []string{"h1:7000", "h2:6379"}, Username: "u", Password: "p",
				ReadTimeout: 3 * time.Second},
		},
		{
			name: "cluster db 0 and addr option",
			give: "redis+cluster://h1:7000/0?addr=h3:7003",
			want: summary{Kind: "cluster", Addrs: []string{"h1:7000", "h3:7003"}},
		},
		{
			name: "cluster over tls checks each node's own name",
			give: "rediss+cluster://h1:7000,h2:7001?skip_verify=1",
			want: summary{Kind: "cluster", Addrs: []string{"h1:7000", "h2:7001"}, TLS: true, SkipVerify: true},
		},
		{
			name: "sentinel",
			give: "redis+sentinel://s1:26379,s2:26380/mymaster",
			want: summary{Kind: "sentinel", Addrs: []string{"s1:26379", "s2:26380"}, MasterName: "mymaster"},
		},
		{
			name: "sentinel credentials db default port",
			give: "redis+sentinel://app:secret@s1/mymaster/2?sentinel_password=spw&sentinel_username=sen&dial_timeout=1",
			want: summary{Kind: "sentinel", Addrs: []string{"s1:26379"}, MasterName: "mymaster", DB: 2,
				Username: "app", Password: "secret", SentinelUsername: "sen", SentinelPassword: "spw",
				DialTimeout: time.Second},
		},
		{
			name: "sentinel over tls with ipv6",
			give: "rediss+sentinel://:pw@[::1]:26379,s2/m",
			want: summary{Kind: "sentinel", Addrs: []string{"[::1]:26379", "s2:26379"}, MasterName: "m",
				Password: "pw", TLS: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseURL(tt.give)
			if err != nil {
				t.Fatalf("parseURL(%q): %v", tt.give, err)
			}
			if got := summarize(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseURL(%q)\n got %+v\nwant %+v", tt.give, got, tt.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		give    string
		wantIs  error  // checked with errors.Is when set
		wantSub string // substring of the message when set
	}{
		{give: "", wantSub: "no scheme"},
		{give: "127.0.0.1:6379", wantSub: "no scheme"},
		{give: "http://h:1", wantSub: `unsupported URL scheme "http"`},
		{give: "redis://h1:1,h2:2", wantSub: "use redis+cluster:// or redis+sentinel://"},
		{give: "redis://u:secret@h:1/x", wantSub: "invalid database number"},
		{give: "redis://u:secret@h:bad/0", wantSub: "invalid URL"},
		{give: "redis+cluster://", wantIs: ErrNoAddr},
		{give: "redis+cluster://h1/3", wantIs: ErrClusterDB},
		{give: "redis+cluster://h1?db=2", wantIs: ErrClusterDB},
		{give: "redis+cluster://h1?skip_verify=true", wantSub: "needs a TLS"},
		{give: "rediss+cluster://h1?skip_verify=maybe", wantSub: "invalid skip_verify"},
		{give: "redis+cluster://h1?bogus=1", wantSub: "unexpected option: bogus"},
		{give: "redis+sentinel://s1", wantIs: ErrNoMasterName},
		{give: "redis+sentinel://s1/", wantIs: ErrNoMasterName},
		{give: "redis+sentinel://s1/m/x", wantSub: `invalid database number "x"`},
		{give: "redis+sentinel://s1/m/1/2", wantSub: "/master or /master/db"},
		{give: "redis+sentinel://s1/m?password=x", wantSub: "option password is not allowed"},
		{give: "redis+sentinel://s1/m?master_name=x", wantSub: "option master_name is not allowed"},
		{give: "redis+sentinel://:secret@s1/m?read_timeout=soon", wantSub: "invalid read_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			_, err := parseURL(tt.give)
			if err == nil {
				t.Fatalf("parseURL(%q) succeeded, want an error", tt.give)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "redisconn: ") {
				t.Errorf("error %q lacks the redisconn: prefix", msg)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q leaks the password", msg)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", msg, tt.wantIs)
			}
			if tt.wantSub != "" && !strings.Contains(msg, tt.wantSub) {
				t.Errorf("error %q does not contain %q", msg, tt.wantSub)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		give Options
		want summary
	}{
		{
			name: "single node with defaults",
			give: Options{Addrs: []string{"127.0.0.1:6379"}},
			want: summary{Kind: "single", Addrs: []string{"127.0.0.1:6379"},
				DialTimeout: DefaultDialTimeout, ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultReadTimeout},
		},
		{
			name: "write timeout follows read timeout",
			give: Options{Addrs: []string{"h:1"}, ReadTimeout: 2 * time.Second, DB: 4, PoolSize: 3,
				Username: "u", Password: "p"},
			want: summary{Kind: "single", Addrs: []string{"h:1"}, DB: 4, PoolSize: 3, Username: "u", Password: "p",
				DialTimeout: DefaultDialTimeout, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second},
		},
		{
			name: "no read timeout",
			give: Options{Addrs: []string{"h:1"}, ReadTimeout: -1, WriteTimeout: time.Second, DialTimeout: time.Minute},
			want: summary{Kind: "single", Addrs: []string{"h:1"},
				DialTimeout: time.Minute, ReadTimeout: -1, WriteTimeout: time.Second},
		},
		{
			name: "cluster",
			give: Options{Addrs: []string{"h1:7000", "h2:7001"}, Cluster: true, Password: "p"},
			want: summary{Kind: "cluster", Addrs: []string{"h1:7000", "h2:7001"}, Password: "p",
				DialTimeout: DefaultDialTimeout, ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultReadTimeout},
		},
		{
			name: "sentinel",
			give: Options{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 1,
				Password: "p", SentinelUsername: "su", SentinelPassword: "sp"},
			want: summary{Kind: "sentinel", Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 1,
				Password: "p", SentinelUsername: "su", SentinelPassword: "sp",
				DialTimeout: DefaultDialTimeout, ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultReadTimeout},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.give.config()
			if err != nil {
				t.Fatalf("config(): %v", err)
			}
			got := summarize(cfg)
			got.Network = "" // go-redis fills it in later
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config()\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestOptionsDoNotAliasAddrs(t *testing.T) {
	addrs := []string{"h1:1", "h2:2"}
	cfg, err := Options{Addrs: addrs, Cluster: true}.config()
	if err != nil {
		t.Fatal(err)
	}
	addrs[0] = "changed:1"
	if cfg.cluster.Addrs[0] != "h1:1" {
		t.Fatalf("cluster options share the caller's slice: %v", cfg.cluster.Addrs)
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    Options
		wantIs  error
		wantSub string
	}{
		{name: "no address", give: Options{}, wantIs: ErrNoAddr},
		{name: "no port", give: Options{Addrs: []string{"localhost"}}, wantSub: `address "localhost" is not host:port`},
		{name: "empty port", give: Options{Addrs: []string{"localhost:"}}, wantSub: "is not host:port"},
		{name: "cluster and sentinel", give: Options{Addrs: []string{"h:1"}, Cluster: true, MasterName: "m"}, wantSub: "exclude each other"},
		{name: "two single nodes", give: Options{Addrs: []string{"h:1", "h:2"}}, wantSub: "set Cluster for a Redis Cluster or MasterName"},
		{name: "sentinel password alone", give: Options{Addrs: []string{"h:1"}, SentinelPassword: "x"}, wantSub: "without MasterName"},
		{name: "cluster db", give: Options{Addrs: []string{"h:1"}, Cluster: true, DB: 1}, wantIs: ErrClusterDB},
		{name: "negative db", give: Options{Addrs: []string{"h:1"}, DB: -1}, wantSub: "invalid database number -1"},
		{name: "negative pool", give: Options{Addrs: []string{"h:1"}, PoolSize: -1}, wantSub: "invalid pool size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.give)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tt.give)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "redisconn: ") {
				t.Errorf("error %q lacks the redisconn: prefix", msg)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", msg, tt.wantIs)
			}
			if tt.wantSub != "" && !strings.Contains(msg, tt.wantSub) {
				t.Errorf("error %q does not contain %q", msg, tt.wantSub)
			}
		})
	}
}

func TestAddr(t *testing.T) {
	tests := []struct {
		name string
		give func() (redis.UniversalClient, error)
		want string
	}{
		{
			name: "single",
			give: func() (redis.UniversalClient, error) { return New(Options{Addrs: []string{"127.0.0.1:6379"}}) },
			want: "127.0.0.1:6379",
		},
		{
			name: "cluster",
			give: func() (redis.UniversalClient, error) { return FromURL("redis+cluster://127.0.0.1:7000,127.0.0.1:7001") },
			want: "cluster 127.0.0.1:7000,127.0.0.1:7001",
		},
		{
			name: "sentinel",
			give: func() (redis.UniversalClient, error) {
				return New(Options{Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, MasterName: "mymaster", Password: "secret"})
			},
			want: "sentinel master mymaster via 10.0.0.1:26379,10.0.0.2:26379",
		},
		{
			name: "unix",
			give: func() (redis.UniversalClient, error) { return FromURL("unix://:secret@/run/redis.sock") },
			want: "unix:/run/redis.sock",
		},
		{
			name: "failover client made elsewhere",
			give: func() (redis.UniversalClient, error) {
				return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"s:26379"}}), nil
			},
			want: "sentinel failover client",
		},
		{
			name: "ring",
			give: func() (redis.UniversalClient, error) {
				return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"b": "h2:2", "a": "h1:1"}}), nil
			},
			want: "ring h1:1,h2:2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.give()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := Addr(c); got != tt.want {
				t.Errorf("Addr() = %q, want %q", got, tt.want)
			}
		})
	}

	if got := Addr(nil); got != "<nil>" {
		t.Errorf("Addr(nil) = %q, want <nil>", got)
	}
	if got := Addr((*redis.Client)(nil)); got != "<nil>" {
		t.Errorf("Addr(nil *Client) = %q, want <nil>", got)
	}
	if got := Addr((*redis.ClusterClient)(nil)); got != "<nil>" {
		t.Errorf("Addr(nil *ClusterClient) = %q, want <nil>", got)
	}
}

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// mustClient returns a function taking New's or FromURL's results: it fails
// tb on an error and closes the client on cleanup. Used as
// mustClient(t)(New(opts)).
func mustClient(tb testing.TB) func(redis.UniversalClient, error) redis.UniversalClient {
	tb.Helper()
	return func(c redis.UniversalClient, err error) redis.UniversalClient {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close() })
		return c
	}
}

func TestConnectSingle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)

	byOptions := mustClient(t)(New(Options{Addrs: []string{s.Addr()}}))
	if err := byOptions.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING via New: %v", err)
	}
	byURL := mustClient(t)(FromURL(s.URL()))
	if err := byURL.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING via FromURL: %v", err)
	}
	if _, ok := byURL.(*redis.Client); !ok {
		t.Fatalf("FromURL(redis://) gave %T, want *redis.Client", byURL)
	}

	// The database number reaches the server.
	db3 := mustClient(t)(FromURL("redis://" + s.Addr() + "/3"))
	if err := db3.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET in db 3: %v", err)
	}
	db3opts := mustClient(t)(New(Options{Addrs: []string{s.Addr()}, DB: 3}))
	if got, err := db3opts.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET in db 3 = %q, %v; want v", got, err)
	}
	if err := byOptions.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET in db 0 = %v, want redis.Nil", err)
	}
}

func TestConnectCredentials(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	admin := s.Client(t)
	if err := admin.ACLSetUser(ctx, "alice", "on", ">alice-pw", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if err := admin.ConfigSet(ctx, "requirepass", "default-pw").Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}

	tests := []struct {
		give    string
		wantErr bool
	}{
		{give: "redis://:default-pw@" + s.Addr()},
		{give: "redis://alice:alice-pw@" + s.Addr() + "/0"},
		{give: "redis://:wrong@" + s.Addr(), wantErr: true},
		{give: "redis://" + s.Addr(), wantErr: true},
	}
	for _, tt := range tests {
		c := mustClient(t)(FromURL(tt.give))
		err := c.Ping(ctx).Err()
		if (err != nil) != tt.wantErr {
			t.Errorf("PING via %s: err = %v, want error: %v", tt.give, err, tt.wantErr)
		}
	}
}

func TestConnectCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cl := redistest.StartCluster(t, 3)

	clients := map[string]redis.UniversalClient{
		"New, every node":   mustClient(t)(New(Options{Addrs: cl.Addrs(), Cluster: true})),
		"New, one seed":     mustClient(t)(New(Options{Addrs: cl.Addrs()[:1], Cluster: true})),
		"FromURL":           mustClient(t)(FromURL("redis+cluster://" + strings.Join(cl.Addrs(), ","))),
		"FromURL, one seed": mustClient(t)(FromURL("redis+cluster://" + cl.Addrs()[1] + "/")),
	}
	for name, c := range clients {
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Fatalf("%s gave %T, want *redis.ClusterClient", name, c)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("%s: PING: %v", name, err)
		}
		// Keys spread over all slots reach every master through redirects.
		for i := range 30 {
			k := name + strconv.Itoa(i)
			if err := c.Set(ctx, k, i, 0).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", name, k, err)
			}
		}
		if want := "cluster "; !strings.HasPrefix(Addr(c), want) {
			t.Errorf("%s: Addr() = %q, want prefix %q", name, Addr(c), want)
		}
	}
}

func TestConnectSentinel(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	masterClient := master.Client(t)

	byOptions := mustClient(t)(New(Options{Addrs: []string{sentinel.Addr()}, MasterName: "mymaster"}))
	if err := byOptions.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through sentinel: %v", err)
	}
	if got, err := masterClient.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET on master = %q, %v; want v", got, err)
	}
	if want := "sentinel master mymaster via " + sentinel.Addr(); Addr(byOptions) != want {
		t.Errorf("Addr() = %q, want %q", Addr(byOptions), want)
	}

	byURL := mustClient(t)(FromURL("redis+sentinel://" + sentinel.Addr() + "/mymaster/0"))
	if err := byURL.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING via sentinel URL: %v", err)
	}

	unknown := mustClient(t)(New(Options{Addrs: []string{sentinel.Addr()}, MasterName: "nosuchmaster", DialTimeout: time.Second}))
	if err := unknown.Ping(ctx).Err(); err == nil {
		t.Fatal("PING for an unknown master name succeeded")
	}

	// The URL's user info authenticates to the master, not to the Sentinel.
	if err := masterClient.ConfigSet(ctx, "requirepass", "master-pw").Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	withPassword := mustClient(t)(FromURL("redis+sentinel://:master-pw@" + sentinel.Addr() + "/mymaster"))
	if err := withPassword.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING via sentinel URL with the master's password: %v", err)
	}
	// Reset the password so the test's cleanup-time clients are not confused.
	if err := withPassword.ConfigSet(ctx, "requirepass", "").Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass '': %v", err)
	}
}
