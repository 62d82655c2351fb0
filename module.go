package wscomponent

import (
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
// Module also provides each binding key, from what the Provide helpers
// bound, so the app's services may take the bindings by name too. Bind the
// keys only with the helpers: a plain fx.Provide under a key's name
// conflicts with Module's.
//
// Instead of a Redis connection, ProvideLocalBus runs one instance without
// Redis.
//
// Startup fails, at fx.New or app.Start, when neither the Redis connection
// nor the local bus is bound (or both are), when the authenticate handler
// is not bound, when RequireEncryption is set without
// a handshake handler or an outbound transformer, when a key is bound twice
// (the message names both calls), when a binding's constructor lacks
// dependencies or returns nil, when a Decorate or Replace helper cannot
// reach the component (it is inside a sibling fx.Module), and when Redis
// does not confirm the subscriptions within ServerOptions.RedisTimeout
// (default 30 s). fx's own start timeout (fx.StartTimeout, 15 s by default)
// also bounds that wait; when it is the shorter one the error says so.
func Module() fx.Option {
	return fx.Module("wscomponent",
		bindServerOptions.provideKey(),
		bindRedisConnection.provideKey(),
		bindLocalBus.provideKey(),
		bindAuthenticate.provideKey(),
		bindValidateRoom.provideKey(),
		bindClientConnected.provideKey(),
		bindClientDisconnected.provideKey(),
		bindMessage.provideKey(),
		bindOutbound.provideKey(),
		bindHandshake.provideKey(),
		bindInbound.provideKey(),
		fx.Provide(newFromGraph),
		// Nothing may ask for the helper; build it anyway.
		fx.Invoke(func(*server.Helper) {}),
	)
}

// graphParams adds to Params the Decorate and Replace helper calls.
type graphParams struct {
	fx.In

	Params    Params
	Overrides []*override `group:"wscomponent/overrides"`
}

// newFromGraph reports the Decorate and Replace calls fx did not apply to
// the component (it applied the others while resolving Params), then calls
// New.
func newFromGraph(g graphParams) (Result, error) {
	if err := checkOverrides(g.Overrides); err != nil {
		return Result{}, err
	}
	return New(g.Params)
}
