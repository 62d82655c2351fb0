package wstest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ignis-go/wscomponent/internal/redistest"
)

// Redis is a real redis-server started for one test (StartRedis). It is
// stopped when the test ends.
type Redis struct{ s *redistest.Server }

// StartRedis starts redis-server on a free loopback port, without
// persistence, and stops it when tb ends.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return &Redis{s: redistest.Start(tb)}
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return r.s.Addr() }

// URL is a redis:// URL for the server (for helpers/redisconn or an app's
// REDIS_URL).
func (r *Redis) URL() string { return r.s.URL() }

// Client returns a go-redis client for the server, closed when tb ends.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	return r.s.Client(tb)
}

// Kill stops the server with SIGKILL, as a crash would; Restart starts it
// again on the same port with no data (a restart without persistence).
func (r *Redis) Kill() { r.s.Kill() }

// Restart starts a killed (or running) server again on the same port.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	r.s.Restart(tb)
}
