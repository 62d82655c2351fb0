// Command minimal is the smallest complete app with the WebSocket
// component: Echo, Redis, zap and an authenticate handler, wired with fx.
// The README shows it line by line.
//
//	REDIS_ADDR=127.0.0.1:6379 go run ./examples/minimal
//
// then connect to ws://127.0.0.1:8080/ws and send
// {"event":"authenticate","data":{"token":"demo-token"}}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/server"
)

func main() {
	fx.New(
		fx.Provide(newEcho, newRedis, zap.NewProduction, newSessions),
		wscomponent.ProvideRedisConnection(func(rdb *redis.Client) redis.UniversalClient { return rdb }),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.ProvideValidateRoomHandler(func() server.ValidateRoomFunc {
			return func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
				return req.Rooms, nil // every (already sanitised) room may be joined
			}
		}),
		wscomponent.ProvideMessageHandler(func() server.MessageHandler {
			return func(ctx context.Context, ev server.MessageEvent) error {
				// Echo every application event back to its sender.
				return server.FromContext(ctx).SendToClient(ev.ClientID, ev.Message.Event, ev.Message.Data)
			}
		}),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{Path: "/ws"}),
		wscomponent.Module(),
	).Run()
}

// newEcho provides Echo and starts/stops it. Appending its hook here, in the
// constructor the component depends on, makes fx stop the component (every
// WebSocket closed with 1001) before Echo.
func newEcho(lc fx.Lifecycle) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			l, err := net.Listen("tcp", "127.0.0.1:8080")
			if err != nil {
				return err
			}
			go func() {
				if err := e.Server.Serve(l); !errors.Is(err, http.ErrServerClosed) {
					e.Logger.Error(err)
				}
			}()
			return nil
		},
		OnStop: e.Shutdown,
	})
	return e
}

// newRedis connects to Redis; the app owns the connection.
func newRedis(lc fx.Lifecycle) *redis.Client {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	lc.Append(fx.StopHook(rdb.Close))
	return rdb
}

// sessions stands for the app's own user store.
type sessions map[string]string

func newSessions() sessions { return sessions{"demo-token": "demo-user"} }

// newAuthenticate is the authenticate handler; it depends on the app's
// sessions service.
func newAuthenticate(s sessions) server.AuthenticateFunc {
	return func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
		var d struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(req.Data, &d); err != nil {
			return nil, nil // rejected: "Authentication failed", close 4003
		}
		user, ok := s[d.Token]
		if !ok {
			return nil, nil
		}
		return &server.AuthResult{UserID: user}, nil
	}
}
