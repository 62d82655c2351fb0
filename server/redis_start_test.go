package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

const (
	// startPassword protects the Redis of the start-up tests.
	startPassword = "start-secret"
	// longRedisTimeout is the RedisTimeout of the tests whose Configure
	// must give up long before it: a refusal no retry can fix.
	longRedisTimeout = 20 * time.Second
	// failFast is the behavioural bound for "returned at once, not after
	// RedisTimeout" (not a performance claim).
	failFast = 5 * time.Second
	// retryWarning is the WARN line of a failed start-up attempt.
	retryWarning = "redis not ready at start-up; retrying until RedisTimeout"
)

// configureOnce builds a Helper on rdb, runs Configure once and reports how
// long it took, the Helper's logs at WARN and above, and Configure's error.
// The Helper is shut down when the test ends.
func configureOnce(t *testing.T, rdb redis.UniversalClient, cfg server.Config) (time.Duration, *observer.ObservedLogs, error) {
	t.Helper()
	core, logs := observer.New(zap.WarnLevel)
	h, err := server.New(server.Options{Config: cfg, Redis: rdb, Authenticate: tokenAuth, Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	// The test's own bound: Configure must end by itself well before.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RedisTimeout+waitTimeout)
	defer cancel()
	start := time.Now()
	err = h.Configure(ctx)
	return time.Since(start), logs, err
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// newClient returns a go-redis client closed when the test ends.
func newClient(t *testing.T, opt *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// aclSetUser runs ACL SETUSER name rules... as the default user.
func aclSetUser(t *testing.T, admin *redis.Client, name string, rules ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	args := []any{"ACL", "SETUSER", name}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %s: %v", name, err)
	}
}

// wantRefused checks a refusal that no retry can fix: reported at once,
// as a *server.RedisRefusedError holding Redis's reply, which starts with
// want, and without retries.
func wantRefused(t *testing.T, took time.Duration, err error, logs *observer.ObservedLogs, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Configure succeeded, want an error with %q", want)
	}
	if took >= failFast {
		t.Errorf("Configure returned after %v (RedisTimeout %v), want before %v", took, longRedisTimeout, failFast)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\ndoes not contain %q", err, want)
	}
	var refused *server.RedisRefusedError
	if !errors.As(err, &refused) {
		t.Errorf("errors.As(%v, *server.RedisRefusedError) = false", err)
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		t.Errorf("errors.As(%v, redis.Error) = false", err)
	} else if !strings.HasPrefix(reply.Error(), want) {
		t.Errorf("redis.Error %q does not start with %q", reply.Error(), want)
	}
	if n := logs.FilterMessage(retryWarning).Len(); n != 0 {
		t.Errorf("%d retry warnings logged, want none: %v", n, logs.All())
	}
}

func TestConfigureFailsFastWhenRedisRefuses(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: startPassword})
	admin := srv.Client(t)
	// Redis 7 gives a new user no channels (acl-pubsub-default): "&*".
	aclSetUser(t, admin, "nosubscribe", "on", ">nosub-pass", "~*", "&*", "+@all",
		"-subscribe", "-psubscribe", "-ssubscribe")
	aclSetUser(t, admin, "nochannels", "on", ">nochan-pass", "~*", "resetchannels", "+@all")

	tests := []struct {
		name string
		give redis.Options
		want string
	}{
		{"no password", redis.Options{}, "NOAUTH"},
		{"wrong password", redis.Options{Password: "not-" + startPassword}, "WRONGPASS"},
		{"unknown user", redis.Options{Username: "nobody", Password: startPassword}, "WRONGPASS"},
		{"db index out of range", redis.Options{Password: startPassword, DB: 99}, "ERR DB index is out of range"},
		{"user without subscribe", redis.Options{Username: "nosubscribe", Password: "nosub-pass"}, "NOPERM"},
		{"user without channels", redis.Options{Username: "nochannels", Password: "nochan-pass"}, "NOPERM"},
	}
	for _, routing := range []string{server.RoutingInterest, server.RoutingPattern} {
		for _, tt := range tests {
			t.Run(routing+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				opt := tt.give
				opt.Addr = srv.Addr()
				took, logs, err := configureOnce(t, newClient(t, &opt),
					server.Config{RedisTimeout: longRedisTimeout, RedisRouting: routing})
				wantRefused(t, took, err, logs, tt.want)
				if err != nil && !strings.Contains(err.Error(), srv.Addr()) {
					t.Errorf("error %q does not name the Redis %s", err, srv.Addr())
				}
			})
		}
	}
}

func TestConfigureWithPassword(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: startPassword})
	for _, routing := range []string{server.RoutingInterest, server.RoutingPattern} {
		t.Run(routing, func(t *testing.T) {
			_, logs, err := configureOnce(t, srv.Client(t),
				server.Config{RedisTimeout: longRedisTimeout, RedisRouting: routing})
			if err != nil {
				t.Fatalf("Configure with the right password: %v", err)
			}
			if logs.Len() != 0 {
				t.Errorf("warnings logged: %v", logs.All())
			}
		})
	}
}

func TestConfigureFailsFastOnUnknownCommand(t *testing.T) {
	// A Redis without SUBSCRIBE stands for one too old for the command the
	// mode needs (SSUBSCRIBE before Redis 7).
	srv := redistest.StartWith(t, redistest.Options{Args: []string{"--rename-command", "SUBSCRIBE", ""}})
	took, logs, err := configureOnce(t, srv.Client(t),
		server.Config{RedisTimeout: longRedisTimeout, RedisRouting: server.RoutingInterest})
	wantRefused(t, took, err, logs, "ERR unknown command")
}

func TestConfigureShardedFailsFastWhenRedisRefuses(t *testing.T) {
	cl := redistest.StartCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	admin := newClient(t, &redis.Options{Addr: cl.Addrs()[0]})
	if err := admin.ConfigSet(ctx, "requirepass", startPassword).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	if err := admin.Do(ctx, "AUTH", startPassword).Err(); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	aclSetUser(t, admin, "nossubscribe", "on", ">nossub-pass", "~*", "&*", "+@all", "-ssubscribe")

	tests := []struct {
		name string
		give redis.ClusterOptions
		want string
	}{
		{"no password", redis.ClusterOptions{}, "NOAUTH"},
		{"wrong password", redis.ClusterOptions{Password: "not-" + startPassword}, "WRONGPASS"},
		{"user without ssubscribe", redis.ClusterOptions{Username: "nossubscribe", Password: "nossub-pass"}, "NOPERM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opt := tt.give
			opt.Addrs = cl.Addrs()
			cc := redis.NewClusterClient(&opt)
			t.Cleanup(func() { _ = cc.Close() })
			took, logs, err := configureOnce(t, cc,
				server.Config{RedisTimeout: longRedisTimeout, RedisRouting: server.RoutingSharded})
			wantRefused(t, took, err, logs, tt.want)
		})
	}
}

func TestConfigureRetriesUntilRedisTimeoutWhenRefused(t *testing.T) {
	const redisTimeout = 1500 * time.Millisecond
	for _, routing := range []string{server.RoutingInterest, server.RoutingPattern, server.RoutingSharded} {
		t.Run(routing, func(t *testing.T) {
			t.Parallel()
			addr := refusedAddr(t)
			var rdb redis.UniversalClient
			if routing == server.RoutingSharded {
				cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
				t.Cleanup(func() { _ = cc.Close() })
				rdb = cc
			} else {
				rdb = newClient(t, &redis.Options{Addr: addr})
			}
			took, logs, err := configureOnce(t, rdb, server.Config{RedisTimeout: redisTimeout, RedisRouting: routing})
			if err == nil {
				t.Fatal("Configure succeeded without Redis")
			}
			if took < redisTimeout {
				t.Errorf("Configure gave up after %v, want it to retry for RedisTimeout (%v)", took, redisTimeout)
			}
			// The last cause, not the wait's own timeout.
			if !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "i/o timeout") {
				t.Errorf("error %q\nwant the last cause (connection refused), not a timeout", err)
			}
			var refused *server.RedisRefusedError
			if errors.As(err, &refused) {
				t.Errorf("a refused connection reported as a refusal no retry can fix: %v", err)
			}

			warnings := logs.FilterMessage(retryWarning).All()
			if len(warnings) == 0 {
				t.Fatalf("no %q logged; logs: %v", retryWarning, logs.All())
			}
			// At most one line per second (startWarnEvery), the first at once.
			if limit := int(took/time.Second) + 1; len(warnings) > limit {
				t.Errorf("%d retry warnings in %v, want at most %d", len(warnings), took, limit)
			}
			for _, w := range warnings {
				fields := w.ContextMap()
				if w.Level != zapcore.WarnLevel || !strings.Contains(fields["error"].(string), "connection refused") {
					t.Errorf("warning %s %v: want WARN naming the cause (connection refused)", w.Level, fields)
				}
			}
		})
	}
}
