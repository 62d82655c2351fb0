package wscomponent_test

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

// Sessions is an application service: it knows who holds which token.
type Sessions struct{ byToken map[string]string }

// NewSessions builds the Sessions service.
func NewSessions() *Sessions { return &Sessions{byToken: map[string]string{"demo-token": "demo-user"}} }

// newEcho provides Echo and appends its start/stop hook. The component
// depends on *echo.Echo, so this hook is appended before the component's
// and fx stops the component (closing every WebSocket with 1001) first.
func newEcho(lc fx.Lifecycle) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			l, err := net.Listen("tcp", ":8080")
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

// newRedis connects to Redis; the app owns the connection and closes it.
func newRedis(lc fx.Lifecycle) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	lc.Append(fx.StopHook(rdb.Close))
	return rdb
}

// newSessionAuth is the authenticate handler; it depends on Sessions.
func newSessionAuth(s *Sessions) server.AuthenticateFunc {
	return func(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
		var d struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(req.Data, &d); err != nil {
			return nil, nil // rejected: "Authentication failed"
		}
		if user, ok := s.byToken[d.Token]; ok {
			return &server.AuthResult{UserID: user}, nil
		}
		return nil, nil
	}
}

// Notifier is a service that sends to users; it takes the helper in its
// constructor.
type Notifier struct{ ws *server.Helper }

// NewNotifier builds the Notifier.
func NewNotifier(ws *server.Helper) *Notifier { return &Notifier{ws: ws} }

// Notify reaches every session of user, on whichever instance it is.
func (n *Notifier) Notify(ctx context.Context, user, text string) error {
	return n.ws.PublishToUser(ctx, user, "notification", map[string]string{"text": text})
}

// The wiring an application writes: Echo, Redis and a logger are the app's
// own; the component consumes them and its bindings, and provides the
// *server.Helper to the app's services.
func ExampleModule() {
	fx.New(
		fx.Provide(newEcho, newRedis, zap.NewExample, NewSessions, NewNotifier),
		wscomponent.ProvideRedisConnection(func(rdb *redis.Client) redis.UniversalClient { return rdb }),
		wscomponent.ProvideAuthenticateHandler(newSessionAuth),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{Path: "/ws"}),
		wscomponent.Module(),
	).Run()
}
