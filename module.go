package wscomponent

import (
	"errors"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent/server"
)

// Module is the WebSocket component for an fx app. It consumes from the
// graph an *echo.Echo, the Redis connection and authenticate handler bound
// under their keys (see ProvideRedisConnection, ProvideAuthenticateHandler)
// and, if present, a *zap.Logger; it constructs none of them and does not
// start Echo. It provides the *server.Helper unnamed and under KeyInstance,
// registers GET <ServerOptions.Path> (default /ws) on Echo, subscribes to
// Redis in its OnStart hook and closes every client (1001) in its OnStop
// hook.
//
// fx runs OnStop hooks in the reverse order of their OnStart hooks. So that
// the component stops before Echo, append Echo's start/stop hook before the
// component's: in the constructor that provides *echo.Echo (the component
// depends on it, so that constructor runs first) or in an fx.Invoke inside a
// module listed before Module(). An fx.Invoke among the top-level options
// runs after Module()'s own and so stops Echo first; that is safe too (the
// component hooks Echo's shutdown, see New) but the two then stop together.
//
// Startup fails, at fx.New or app.Start, when the Redis connection or the
// authenticate handler is not bound, when RequireEncryption is set without
// a handshake handler or an outbound transformer, when a binding's
// constructor lacks dependencies, and when Redis does not confirm the
// subscriptions within ServerOptions.RedisTimeout (default 30 s). fx's own
// start timeout (fx.StartTimeout, 15 s by default) also bounds that wait;
// when it is the shorter one the error says so.
func Module() fx.Option {
	return fx.Module("wscomponent",
		fx.Provide(newFromGraph),
		// Nothing may ask for the helper; build it anyway.
		fx.Invoke(func(*server.Helper) {}),
	)
}

// graphParams adds to Params the markers of the Provide helpers.
type graphParams struct {
	fx.In

	Params Params

	ServerOptions       *bound[ServerOptions]                 `optional:"true"`
	Redis               *bound[redis.UniversalClient]         `optional:"true"`
	Authenticate        *bound[server.AuthenticateFunc]       `optional:"true"`
	ValidateRoom        *bound[server.ValidateRoomFunc]       `optional:"true"`
	ClientConnected     *bound[server.ClientConnectedFunc]    `optional:"true"`
	ClientDisconnected  *bound[server.ClientDisconnectedFunc] `optional:"true"`
	Message             *bound[server.MessageHandler]         `optional:"true"`
	OutboundTransformer *bound[server.OutboundTransformer]    `optional:"true"`
	Handshake           *bound[server.HandshakeFunc]          `optional:"true"`
	InboundTransformer  *bound[server.InboundTransformer]     `optional:"true"`
}

// newFromGraph reports bindings whose constructors could not be built
// (fx turns them into nil for optional parameters), then calls New.
func newFromGraph(g graphParams) (Result, error) {
	p := g.Params
	if err := errors.Join(
		g.ServerOptions.problem(p.Options),
		g.Redis.problem(p.Redis),
		g.Authenticate.problem(p.Authenticate),
		g.ValidateRoom.problem(p.ValidateRoom),
		g.ClientConnected.problem(p.ClientConnected),
		g.ClientDisconnected.problem(p.ClientDisconnected),
		g.Message.problem(p.Message),
		g.OutboundTransformer.problem(p.OutboundTransformer),
		g.Handshake.problem(p.Handshake),
		g.InboundTransformer.problem(p.InboundTransformer),
	); err != nil {
		return Result{}, err
	}
	return New(p)
}
