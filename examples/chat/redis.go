package main

import (
	"context"
	"fmt"
	"net"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/redisconn"
)

// newRedis returns the connection the component uses for Pub/Sub: the
// Redis at cfg.RedisURL, or, without one, an embedded in-process Redis so
// that the example runs on a machine that has none.
func newRedis(lc fx.Lifecycle, cfg config, log *zap.Logger) (redis.UniversalClient, error) {
	if cfg.RedisURL == "" {
		return newEmbeddedRedis(lc, log), nil
	}
	rdb, err := redisconn.FromURL(cfg.RedisURL)
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it was.
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	log.Info("using Redis; instances on the same Redis share rooms", zap.String("redis", redisconn.Addr(rdb)))
	lc.Append(fx.StopHook(rdb.Close))
	return rdb, nil
}

// newEmbeddedRedis runs miniredis inside the process. It listens from
// OnStart to OnStop only: the client dials whatever address it got, so
// nothing runs (and nothing leaks) if the app is built but never started.
// The component's own hooks come after these, so Redis is up before the
// helper subscribes and still up while it shuts down.
func newEmbeddedRedis(lc fx.Lifecycle, log *zap.Logger) redis.UniversalClient {
	mr := miniredis.NewMiniRedis()
	rdb := redis.NewClient(&redis.Options{
		Addr: "embedded",
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, mr.Addr())
		},
	})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if err := mr.Start(); err != nil { // 127.0.0.1, a free port
				return fmt.Errorf("start embedded redis: %w", err)
			}
			log.Warn("REDIS_URL not set: started an embedded in-process Redis; "+
				"other instances will not share rooms with this one (set REDIS_URL to run several)",
				zap.String("redis", mr.Addr()))
			return nil
		},
		OnStop: func(context.Context) error {
			err := rdb.Close()
			mr.Close()
			return err
		},
	})
	return rdb
}
