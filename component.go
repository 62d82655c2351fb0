package wscomponent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/metrics"
	"github.com/ignis-go/wscomponent/server"
)

// Startup errors, returned (wrapped by fx) from fx.New and app.Err when a
// binding the component needs is missing.
var (
	// ErrNoRedisConnection: nothing is bound under KeyRedisConnection.
	ErrNoRedisConnection = errors.New("wscomponent: no Redis connection bound: provide one with wscomponent.ProvideRedisConnection(...), " +
		"or run one instance without Redis with wscomponent.ProvideLocalBus()")
	// ErrLocalBusWithRedis: both ProvideLocalBus and a Redis connection are
	// bound.
	ErrLocalBusWithRedis = errors.New("wscomponent: both wscomponent.ProvideLocalBus() and a Redis connection are bound: " +
		"keep ProvideRedisConnection for a fleet, or ProvideLocalBus for one instance without Redis")
	// ErrNoAuthenticateHandler: nothing is bound under KeyAuthenticateHandler.
	ErrNoAuthenticateHandler = errors.New("wscomponent: no authenticate handler bound: provide one with wscomponent.ProvideAuthenticateHandler(...)")
	// ErrNoHandshakeHandler: RequireEncryption is set and nothing is bound
	// under KeyHandshakeHandler.
	ErrNoHandshakeHandler = errors.New("wscomponent: ServerOptions.RequireEncryption is set but no handshake handler is bound: provide one with wscomponent.ProvideHandshakeHandler(...)")
	// ErrNoOutboundTransformer: RequireEncryption is set and nothing is
	// bound under KeyOutboundTransformer.
	ErrNoOutboundTransformer = errors.New("wscomponent: ServerOptions.RequireEncryption is set but no outbound transformer is bound: provide one with wscomponent.ProvideOutboundTransformer(...)")
	// ErrNoEcho: the app provides no *echo.Echo.
	ErrNoEcho = errors.New("wscomponent: no *echo.Echo in the app: provide one (e.g. fx.Provide(echo.New)) and start it from a lifecycle hook")
)

// Params is what the component takes from the app. Every binding is
// optional for fx so that a missing one is reported by New with a message
// that says how to bind it; the struct tags name the Key constants.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	// Echo gets the upgrade route. Required; the app starts and stops it.
	Echo *echo.Echo `optional:"true"`
	// Logger, if present, receives the helper's logs (named by
	// ServerOptions.Identifier). Default: a no-op logger.
	Logger *zap.Logger `optional:"true"`

	Options             ServerOptions                 `name:"@app/websocket/server-options" optional:"true"`
	Redis               redis.UniversalClient         `name:"@app/websocket/redis-connection" optional:"true"`
	LocalBus            LocalBus                      `name:"@app/websocket/local-bus" optional:"true"`
	Authenticate        server.AuthenticateFunc       `name:"@app/websocket/authenticate-handler" optional:"true"`
	ValidateRoom        server.ValidateRoomFunc       `name:"@app/websocket/validate-room-handler" optional:"true"`
	ClientConnected     server.ClientConnectedFunc    `name:"@app/websocket/client-connected-handler" optional:"true"`
	ClientDisconnected  server.ClientDisconnectedFunc `name:"@app/websocket/client-disconnected-handler" optional:"true"`
	Message             server.MessageHandler         `name:"@app/websocket/message-handler" optional:"true"`
	OutboundTransformer server.OutboundTransformer    `name:"@app/websocket/outbound-transformer" optional:"true"`
	Handshake           server.HandshakeFunc          `name:"@app/websocket/handshake-handler" optional:"true"`
	InboundTransformer  server.InboundTransformer     `name:"@app/websocket/inbound-transformer" optional:"true"`
	// DisconnectHooks are extra disconnect callbacks from components such
	// as ProvideEncryption (value group GroupDisconnectHooks).
	DisconnectHooks []server.ClientDisconnectedFunc `group:"@app/websocket/disconnect-hooks"`
	// Registerer, if the app provides one, gets the component's metrics
	// (package metrics: every Stats counter plus latency histograms).
	Registerer prometheus.Registerer `optional:"true"`
}

// Result is what the component provides: the same *server.Helper unnamed
// (so services take it in their constructors) and under KeyInstance.
type Result struct {
	fx.Out

	Helper   *server.Helper
	Instance *server.Helper `name:"@app/websocket/instance"`
}

// New builds the server helper from the bindings in p, registers
// GET <ServerOptions.Path> (default /ws) on p.Echo and ties the helper to the
// app's lifecycle: Configure (Redis subscriptions confirmed) in OnStart,
// Shutdown (clients closed with 1001) in OnStop. Module provides it; call it
// yourself only to wire the component without Module.
//
// Missing bindings are reported with the ErrNo… errors. New also registers
// the helper's Shutdown with Echo's http.Server.RegisterOnShutdown, because
// net/http does not close hijacked connections: if the app stops Echo
// before the component, WebSocket clients are still told 1001 at once.
func New(p Params) (Result, error) {
	if err := checkParams(p); err != nil {
		return Result{}, err
	}
	var m *metrics.Metrics
	var observer server.Observer
	if p.Registerer != nil {
		m = metrics.New()
		observer = m
	}
	h, err := server.New(server.Options{
		Observer:            observer,
		Config:              p.Options,
		Redis:               p.Redis,
		LocalBus:            bool(p.LocalBus),
		Logger:              p.Logger,
		Authenticate:        p.Authenticate,
		ValidateRoom:        p.ValidateRoom,
		ClientConnected:     p.ClientConnected,
		ClientDisconnected:  p.ClientDisconnected,
		Message:             p.Message,
		OutboundTransformer: p.OutboundTransformer,
		Handshake:           p.Handshake,
		InboundTransformer:  p.InboundTransformer,
		DisconnectHooks:     p.DisconnectHooks,
	})
	if err != nil {
		return Result{}, fmt.Errorf("wscomponent: %w", err)
	}
	if m != nil {
		m.Attach(h)
		if err := p.Registerer.Register(m); err != nil {
			return Result{}, fmt.Errorf("wscomponent: register metrics on the app's prometheus.Registerer "+
				"(is a second wscomponent registered on it? wrap one with prometheus.WrapRegistererWith): %w", err)
		}
	}
	c := newLifecycle(h)
	p.Echo.GET(h.Config().Path, echo.WrapHandler(h))
	for _, s := range []*http.Server{p.Echo.Server, p.Echo.TLSServer} {
		if s != nil {
			s.RegisterOnShutdown(c.shutdown)
		}
	}
	p.Lifecycle.Append(fx.Hook{OnStart: c.start, OnStop: c.stop})
	return Result{Helper: h, Instance: h}, nil
}

// checkParams reports every missing binding at once.
func checkParams(p Params) error {
	var errs []error
	if p.Echo == nil {
		errs = append(errs, ErrNoEcho)
	}
	switch {
	case p.Redis == nil && !bool(p.LocalBus):
		errs = append(errs, ErrNoRedisConnection)
	case p.Redis != nil && bool(p.LocalBus):
		errs = append(errs, ErrLocalBusWithRedis)
	}
	if p.Authenticate == nil {
		errs = append(errs, ErrNoAuthenticateHandler)
	}
	if p.Options.RequireEncryption {
		if p.Handshake == nil {
			errs = append(errs, ErrNoHandshakeHandler)
		}
		if p.OutboundTransformer == nil {
			errs = append(errs, ErrNoOutboundTransformer)
		}
	}
	return errors.Join(errs...)
}

// lifecycle runs the helper's Configure and Shutdown for the fx hooks.
type lifecycle struct {
	h *server.Helper

	// stopCtx bounds Shutdown; it is cancelled when the OnStop context
	// ends, whichever of OnStop and Echo's shutdown started it.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	stopOnce   sync.Once
	stopErr    error
}

func newLifecycle(h *server.Helper) *lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	return &lifecycle{h: h, stopCtx: ctx, cancelStop: cancel}
}

// startMargin is the share of the app's remaining start time kept back so
// that a Redis wait cut short by fx's start timeout ends with our message
// rather than fx's bare "context deadline exceeded".
const (
	startMarginDiv = 20
	maxStartMargin = time.Second
)

// start subscribes to Redis, waiting at most ServerOptions.RedisTimeout
// (and less if the app's start timeout ends sooner); a refusal that no wait
// can fix (server.RedisRefusedError) fails it at once.
func (l *lifecycle) start(ctx context.Context) error {
	redisTimeout := l.h.Config().RedisTimeout
	budget := redisTimeout
	cut := false
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		left -= min(left/startMarginDiv, maxStartMargin)
		if left < budget {
			budget, cut = max(left, 0), true
		}
	}
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := l.h.Configure(cctx)
	var refused *server.RedisRefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		// Waiting longer cannot help: say what to fix instead.
		return fmt.Errorf("wscomponent: start: redis refused the connection's credentials or settings "+
			"(fix the Redis URL, password, ACL user or DB): %w", err)
	case cut:
		return fmt.Errorf("wscomponent: start: the app's start timeout left %s, less than "+
			"ServerOptions.RedisTimeout (%s): check that Redis is reachable, raise fx.StartTimeout "+
			"or lower RedisTimeout: %w", budget.Round(time.Millisecond), redisTimeout, err)
	default:
		return fmt.Errorf("wscomponent: start: check that Redis is reachable "+
			"or raise ServerOptions.RedisTimeout (%s): %w", redisTimeout, err)
	}
}

// stop shuts the helper down, or waits for the shutdown Echo started.
func (l *lifecycle) stop(ctx context.Context) error {
	release := context.AfterFunc(ctx, l.cancelStop)
	defer release()
	l.shutdown()
	l.cancelStop()
	if l.stopErr != nil {
		return fmt.Errorf("wscomponent: stop: %w", l.stopErr)
	}
	return nil
}

// shutdown runs the helper's Shutdown once; concurrent callers wait for it.
// net/http calls it in a goroutine of its own when Echo shuts down.
func (l *lifecycle) shutdown() {
	l.stopOnce.Do(func() { l.stopErr = l.h.Shutdown(l.stopCtx) })
}
