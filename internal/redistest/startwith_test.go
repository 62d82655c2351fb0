package redistest

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartWithPasswordAndArgs(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := StartWith(t, Options{Password: "s3cret pass", Args: []string{"--databases", "2"}})

	if s.Password() != "s3cret pass" {
		t.Errorf("Password() = %q, want %q", s.Password(), "s3cret pass")
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil || opt.Addr != s.Addr() || opt.Password != "s3cret pass" || opt.DB != 0 {
		t.Fatalf("redis.ParseURL(%q) = %+v, %v; want addr %s, the password, db 0", s.URL(), opt, err, s.Addr())
	}
	fromURL := redis.NewClient(opt)
	t.Cleanup(func() { _ = fromURL.Close() })
	if err := fromURL.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with the URL's client: %v", err)
	}
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with Client: %v", err)
	}

	anon := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = anon.Close() })
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password: %v, want NOAUTH", err)
	}

	got, err := s.Client(t).ConfigGet(ctx, "databases").Result()
	if err != nil || got["databases"] != "2" {
		t.Errorf("CONFIG GET databases = %v, %v; want 2 (from Args)", got, err)
	}

	// Restart keeps the password (readiness probes authenticate).
	s.Restart(t)
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}
