package wscomponent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
)

func TestStartFailsAtOnceOnWrongRedisPassword(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Password: "right-password"})
	tests := []struct {
		name         string
		redisTimeout time.Duration // 0: the default (30s)
		startTimeout time.Duration // app.Start's context, as fx.StartTimeout sets it
	}{
		{"RedisTimeout 20s", 20 * time.Second, time.Minute},
		// fx's default start timeout (15s) cuts the default RedisTimeout:
		// the advice is still about the password, not the timeouts.
		{"fx default start timeout", 0, fx.DefaultTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "wrong-password"})
			t.Cleanup(func() { _ = rdb.Close() })
			app := fx.New(fx.NopLogger,
				baseOptions(&loopbackEcho{}, rdb),
				wscomponent.ProvideAuthenticateHandler(newAuthenticate),
				wscomponent.SupplyServerOptions(wscomponent.ServerOptions{RedisTimeout: tt.redisTimeout}),
			)
			if err := app.Err(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.startTimeout)
			defer cancel()
			start := time.Now()
			err := app.Start(ctx)
			took := time.Since(start)
			if err == nil {
				_ = app.Stop(context.Background())
				t.Fatal("app started with a wrong Redis password")
			}
			// A behavioural bound ("at once, not after RedisTimeout"), not a
			// performance claim.
			if took >= 5*time.Second {
				t.Errorf("app.Start failed after %v, want at once", took)
			}
			for _, w := range []string{
				"wscomponent: start: redis refused the connection's credentials or settings",
				"WRONGPASS", srv.Addr(),
			} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			for _, w := range []string{"check that Redis is reachable", "RedisTimeout"} {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ngives the advice for an unreachable Redis (%q)", err, w)
				}
			}
			var refused *server.RedisRefusedError
			var reply redis.Error
			if !errors.As(err, &refused) || !errors.As(err, &reply) {
				t.Errorf("errors.As(%v): *server.RedisRefusedError %v, redis.Error %v; want both", err, refused != nil, reply != nil)
			}
		})
	}
}
