package wscomponent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent"
)

// TestProvideLocalBusRunsWithoutRedis: an app that binds the local bus
// instead of a Redis connection starts, serves and stops.
func TestProvideLocalBusRunsWithoutRedis(t *testing.T) {
	srv := &loopbackEcho{}
	_, h := startApp(t,
		srv.provide(),
		fx.Provide(newTokens),
		wscomponent.ProvideLocalBus(),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.Module(),
	)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	c := dial(t, srv.url("/ws"))
	authenticate(t, c, "t-alice")
	if err := h.PublishToUser(ctx, "alice", "hi", nil); err != nil {
		t.Errorf("PublishToUser on the local bus: %v", err)
	}
}

// TestProvideLocalBusErrors: the local bus with a Redis connection, or
// bound twice, fails the app with a message that says what to fix.
func TestProvideLocalBusErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name   string
		give   []fx.Option
		want   string
		wantIs error
	}{
		{
			name:   "with redis",
			give:   []fx.Option{wscomponent.ProvideLocalBus(), wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb })},
			want:   "both wscomponent.ProvideLocalBus() and a Redis connection are bound",
			wantIs: wscomponent.ErrLocalBusWithRedis,
		},
		{
			name: "twice",
			give: []fx.Option{wscomponent.ProvideLocalBus(), wscomponent.ProvideLocalBus()},
			want: "the key " + wscomponent.KeyLocalBus + " (local bus) is already provided: it is bound twice",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &loopbackEcho{}
			app := fx.New(append(tt.give, fx.NopLogger,
				srv.provide(), fx.Provide(newTokens),
				wscomponent.ProvideAuthenticateHandler(newAuthenticate),
				wscomponent.Module(),
			)...)
			err := app.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("app error %v\nwant one containing %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}
