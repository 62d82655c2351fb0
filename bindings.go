package wscomponent

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// The binding keys. Each is the fx value name (`name:"…"`) under which the
// component looks for one binding; they keep the Ignis strings so that a
// reader of both frameworks recognises them. Bind a key with its typed
// Provide helper (ProvideAuthenticateHandler, …) and override it with the
// matching Decorate or Replace helper. A plain fx.Annotate with
// fx.ResultTags(`name:"<key>"`) works too, but only the helpers let the
// component tell a missing binding from one whose constructor could not be
// built.
const (
	// KeyServerOptions names the ServerOptions (optional; zero fields take
	// the defaults documented on server.Config).
	KeyServerOptions = "@app/websocket/server-options"
	// KeyRedisConnection names the redis.UniversalClient carrying the
	// Pub/Sub traffic between instances (required).
	KeyRedisConnection = "@app/websocket/redis-connection"
	// KeyAuthenticateHandler names the server.AuthenticateFunc (required).
	KeyAuthenticateHandler = "@app/websocket/authenticate-handler"
	// KeyValidateRoomHandler names the server.ValidateRoomFunc (optional;
	// without it every join request is refused).
	KeyValidateRoomHandler = "@app/websocket/validate-room-handler"
	// KeyClientConnectedHandler names the server.ClientConnectedFunc
	// (optional).
	KeyClientConnectedHandler = "@app/websocket/client-connected-handler"
	// KeyClientDisconnectedHandler names the server.ClientDisconnectedFunc
	// (optional).
	KeyClientDisconnectedHandler = "@app/websocket/client-disconnected-handler"
	// KeyMessageHandler names the server.MessageHandler (optional; without
	// it application events are dropped).
	KeyMessageHandler = "@app/websocket/message-handler"
	// KeyOutboundTransformer names the server.OutboundTransformer (required
	// when ServerOptions.RequireEncryption is set).
	KeyOutboundTransformer = "@app/websocket/outbound-transformer"
	// KeyHandshakeHandler names the server.HandshakeFunc (required when
	// ServerOptions.RequireEncryption is set).
	KeyHandshakeHandler = "@app/websocket/handshake-handler"
	// KeyInboundTransformer names the server.InboundTransformer (optional),
	// which decodes "encrypted" frames from encrypted clients. Ignis has no
	// such binding; the key follows its naming.
	KeyInboundTransformer = "@app/websocket/inbound-transformer"
	// KeyInstance names the *server.Helper the component provides (it is
	// provided unnamed too).
	KeyInstance = "@app/websocket/instance"
	// GroupDisconnectHooks is the fx value group of extra
	// server.ClientDisconnectedFunc hooks run after the client-disconnected
	// handler (components use it to drop per-client state).
	GroupDisconnectHooks = "@app/websocket/disconnect-hooks"
)

// ServerOptions configures the component's server helper. It is partial:
// every zero field takes the default written on server.Config, and Path
// (default "/ws") is the route the component registers on Echo.
type ServerOptions = server.Config

// nameTag is the struct tag naming a value with key.
func nameTag(key string) string { return `name:"` + key + `"` }

// binding describes one key for the typed helpers and their messages.
type binding[T any] struct {
	key  string
	what string // e.g. "authenticate handler"
	// suffix of the helper names: Provide<suffix>, Decorate<suffix>, …
	suffix string
	// zeroOK: the zero value is a valid binding (ServerOptions: defaults).
	zeroOK bool
}

var (
	bindServerOptions      = binding[ServerOptions]{KeyServerOptions, "server options", "ServerOptions", true}
	bindRedisConnection    = binding[redis.UniversalClient]{KeyRedisConnection, "Redis connection", "RedisConnection", false}
	bindAuthenticate       = binding[server.AuthenticateFunc]{KeyAuthenticateHandler, "authenticate handler", "AuthenticateHandler", false}
	bindValidateRoom       = binding[server.ValidateRoomFunc]{KeyValidateRoomHandler, "validate-room handler", "ValidateRoomHandler", false}
	bindClientConnected    = binding[server.ClientConnectedFunc]{KeyClientConnectedHandler, "client-connected handler", "ClientConnectedHandler", false}
	bindClientDisconnected = binding[server.ClientDisconnectedFunc]{KeyClientDisconnectedHandler, "client-disconnected handler", "ClientDisconnectedHandler", false}
	bindMessage            = binding[server.MessageHandler]{KeyMessageHandler, "message handler", "MessageHandler", false}
	bindOutbound           = binding[server.OutboundTransformer]{KeyOutboundTransformer, "outbound transformer", "OutboundTransformer", false}
	bindHandshake          = binding[server.HandshakeFunc]{KeyHandshakeHandler, "handshake handler", "HandshakeHandler", false}
	bindInbound            = binding[server.InboundTransformer]{KeyInboundTransformer, "inbound transformer", "InboundTransformer", false}
)

// bound is provided (unnamed: its type is unique per key) next to every
// value bound with a Provide helper. fx resolves the component's bindings
// as optional, and an optional value whose constructor lacks dependencies
// silently becomes nil; bound lets the component report that case instead
// of "not bound" or, worse, running without a handler the app did bind.
type bound[T any] struct {
	b        binding[T]
	ctor     reflect.Type
	called   atomic.Bool // the constructor ran
	replaced atomic.Bool // a Replace helper set the value
}

// problem reports a binding whose constructor never ran although the
// resolved value is zero (so no decorator or Replace made up for it).
func (s *bound[T]) problem(v T) error {
	if s == nil || s.called.Load() || s.replaced.Load() || !reflect.ValueOf(&v).Elem().IsZero() {
		return nil
	}
	return fmt.Errorf("wscomponent: the %s bound with wscomponent.Provide%s could not be built: "+
		"fx could not resolve every parameter of its constructor (%s); provide them in the app",
		s.b.what, s.b.suffix, s.ctor)
}

var (
	errorType = reflect.TypeFor[error]()
	inType    = reflect.TypeFor[fx.In]()
)

// provide binds the result of ctor under b.key.
func (b binding[T]) provide(ctor any) fx.Option {
	ft, err := b.checkFunc("Provide", ctor, "a constructor (a func returning %[1]s, or %[1]s and an error)")
	if err == nil {
		err = b.checkResults("Provide", ft)
	}
	if err != nil {
		return fx.Error(err)
	}
	want := reflect.TypeFor[T]()
	fn := reflect.ValueOf(ctor)
	marker := reflect.TypeFor[*bound[T]]()
	in := append([]reflect.Type{marker}, paramTypes(ft)...)
	wrapped := reflect.MakeFunc(
		reflect.FuncOf(in, []reflect.Type{want, errorType}, ft.IsVariadic()),
		func(args []reflect.Value) []reflect.Value {
			args[0].Interface().(*bound[T]).called.Store(true)
			return convertResults(want, call(fn, ft, args[1:]))
		})
	// The value first: binding a key twice then fails naming the key.
	return fx.Options(
		fx.Provide(fx.Annotate(wrapped.Interface(), fx.ResultTags(nameTag(b.key)))),
		fx.Provide(func() *bound[T] { return &bound[T]{b: b, ctor: ft} }),
	)
}

// decorate binds decorator(old, deps…) under b.key in place of old.
func (b binding[T]) decorate(decorator any) fx.Option {
	ft, err := b.checkFunc("Decorate", decorator, "a decorator (a func taking the current %[1]s first and returning the new one)")
	if err == nil {
		err = b.checkDecoratorParams(ft)
	}
	if err == nil {
		err = b.checkResults("Decorate", ft)
	}
	if err != nil {
		return fx.Error(err)
	}
	want := reflect.TypeFor[T]()
	fn := reflect.ValueOf(decorator)
	// The wrapper takes the current value as optional, and the binding's
	// marker, so that it can say what is wrong instead of fx's missing
	// type (nothing bound) or a silent nil (constructor not built).
	in := paramTypes(ft)
	in = append([]reflect.Type{in[0], reflect.TypeFor[*bound[T]]()}, in[1:]...)
	wrapped := reflect.MakeFunc(
		reflect.FuncOf(in, []reflect.Type{want, errorType}, ft.IsVariadic()),
		func(args []reflect.Value) []reflect.Value {
			if err := b.checkCurrent(args[0], args[1].Interface().(*bound[T])); err != nil {
				return []reflect.Value{reflect.Zero(want), reflect.ValueOf(&err).Elem()}
			}
			args = append(args[:1], args[2:]...)
			return convertResults(want, call(fn, ft, args))
		})
	return fx.Decorate(fx.Annotate(wrapped.Interface(),
		fx.ParamTags(nameTag(b.key)+` optional:"true"`, `optional:"true"`),
		fx.ResultTags(nameTag(b.key))))
}

// checkCurrent reports why a decorator would get a zero current value:
// nothing is bound, or the bound constructor could not be built. Zero
// ServerOptions bound by nobody are fine: they mean "all defaults".
func (b binding[T]) checkCurrent(current reflect.Value, marker *bound[T]) error {
	if !current.IsZero() {
		return nil
	}
	if marker != nil {
		var v T
		reflect.ValueOf(&v).Elem().Set(current)
		return marker.problem(v)
	}
	if b.zeroOK {
		return nil
	}
	return fmt.Errorf("wscomponent: Decorate%[1]s: no %[2]s is bound to decorate: bind one with "+
		"wscomponent.Provide%[1]s(...), or set it with wscomponent.Replace%[1]s(...)", b.suffix, b.what)
}

// replace binds v under b.key, whatever was bound before.
func (b binding[T]) replace(v T) fx.Option {
	return fx.Decorate(fx.Annotate(func(s *bound[T]) T {
		if s != nil {
			s.replaced.Store(true)
		}
		return v
	}, fx.ParamTags(`optional:"true"`), fx.ResultTags(nameTag(b.key))))
}

// checkFunc checks that f is a func and returns its type.
func (b binding[T]) checkFunc(verb string, f any, want string) (reflect.Type, error) {
	t := reflect.TypeFor[T]()
	wantText := fmt.Sprintf(want, t)
	if f == nil {
		return nil, fmt.Errorf("wscomponent: %s%s: got nil, want %s", verb, b.suffix, wantText)
	}
	ft := reflect.TypeOf(f)
	if ft.Kind() == reflect.Func && !ft.AssignableTo(t) {
		return ft, nil
	}
	hint := ""
	if ft.AssignableTo(t) {
		hint = fmt.Sprintf("; to bind a %s value, wrap it: func() %s { return v }", t, t)
	}
	return nil, fmt.Errorf("wscomponent: %s%s: got %s, want %s%s", verb, b.suffix, ft, wantText, hint)
}

// checkResults checks that ft returns T (or a type assignable to it),
// optionally followed by an error.
func (b binding[T]) checkResults(verb string, ft reflect.Type) error {
	t := reflect.TypeFor[T]()
	n := ft.NumOut()
	switch {
	case n == 0 || n > 2 || (n == 2 && ft.Out(1) != errorType):
		return fmt.Errorf("wscomponent: %s%s: %s must return %s, or %s and an error", verb, b.suffix, ft, t, t)
	case !ft.Out(0).AssignableTo(t):
		return fmt.Errorf("wscomponent: %s%s: %s returns %s, which is not a %s", verb, b.suffix, ft, ft.Out(0), t)
	}
	return nil
}

// checkDecoratorParams checks that ft takes T first and no fx.In struct
// after it (the first parameter is named with fx.ParamTags, which fx does
// not combine with fx.In structs).
func (b binding[T]) checkDecoratorParams(ft reflect.Type) error {
	t := reflect.TypeFor[T]()
	if ft.NumIn() == 0 || ft.In(0) != t {
		return fmt.Errorf("wscomponent: Decorate%s: %s must take the current %s as its first parameter", b.suffix, ft, t)
	}
	for i := 1; i < ft.NumIn(); i++ {
		if isIn(ft.In(i)) {
			return fmt.Errorf("wscomponent: Decorate%s: %s takes an fx.In struct; take the dependencies as plain parameters", b.suffix, ft)
		}
	}
	return nil
}

func isIn(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if f := t.Field(i); f.Anonymous && f.Type == inType {
			return true
		}
	}
	return false
}

func paramTypes(ft reflect.Type) []reflect.Type {
	in := make([]reflect.Type, ft.NumIn())
	for i := range in {
		in[i] = ft.In(i)
	}
	return in
}

func call(fn reflect.Value, ft reflect.Type, args []reflect.Value) []reflect.Value {
	if ft.IsVariadic() {
		return fn.CallSlice(args)
	}
	return fn.Call(args)
}

// convertResults turns (R[, error]) into (T, error).
func convertResults(want reflect.Type, out []reflect.Value) []reflect.Value {
	v := reflect.New(want).Elem()
	v.Set(out[0])
	errv := reflect.Zero(errorType)
	if len(out) == 2 {
		errv = out[1]
	}
	return []reflect.Value{v, errv}
}

// ProvideServerOptions binds the ServerOptions returned by ctor, a
// constructor whose parameters are resolved from the app (for example a
// config service): func(cfg *Config) wscomponent.ServerOptions, optionally
// returning an error too. Zero fields take their defaults.
func ProvideServerOptions(ctor any) fx.Option { return bindServerOptions.provide(ctor) }

// SupplyServerOptions binds opts as the ServerOptions.
func SupplyServerOptions(opts ServerOptions) fx.Option {
	return bindServerOptions.provide(func() ServerOptions { return opts })
}

// DecorateServerOptions replaces the bound ServerOptions with what
// decorator returns. decorator takes the current ServerOptions first, then
// any dependencies from the app, and returns the new ServerOptions
// (optionally with an error).
//
// Like every Decorate and Replace helper it is an fx.Decorate: it applies to
// the module it is given in and the modules inside it. Given among the
// top-level options of fx.New (or in a module that contains Module()) it
// changes what the component uses; given inside a sibling module it has no
// effect on the component. A key takes one Decorate or Replace per module.
//
// The other Decorate helpers need a bound value to decorate and fail the
// app otherwise (use the Replace helper to set one); ServerOptions nobody
// bound reach decorator as the zero ServerOptions, meaning all defaults.
func DecorateServerOptions(decorator any) fx.Option { return bindServerOptions.decorate(decorator) }

// ReplaceServerOptions sets the ServerOptions to opts, whatever was bound.
// See DecorateServerOptions for the scope it applies to.
func ReplaceServerOptions(opts ServerOptions) fx.Option { return bindServerOptions.replace(opts) }

// ProvideRedisConnection binds the Redis connection returned by ctor, a
// constructor whose parameters are resolved from the app. It may return
// any redis.UniversalClient (*redis.Client, *redis.ClusterClient, …),
// optionally with an error. The app owns the connection and closes it.
func ProvideRedisConnection(ctor any) fx.Option { return bindRedisConnection.provide(ctor) }

// DecorateRedisConnection replaces the bound Redis connection with what
// decorator returns; decorator takes the current redis.UniversalClient
// first, then any dependencies. See DecorateServerOptions for the scope.
func DecorateRedisConnection(decorator any) fx.Option { return bindRedisConnection.decorate(decorator) }

// ReplaceRedisConnection sets the Redis connection to rdb, whatever was
// bound. See DecorateServerOptions for the scope it applies to.
func ReplaceRedisConnection(rdb redis.UniversalClient) fx.Option {
	return bindRedisConnection.replace(rdb)
}

// ProvideAuthenticateHandler binds the server.AuthenticateFunc returned by
// ctor, a constructor whose parameters are resolved from the app:
//
//	wscomponent.ProvideAuthenticateHandler(func(users *Users) server.AuthenticateFunc {
//		return func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) { … }
//	})
func ProvideAuthenticateHandler(ctor any) fx.Option { return bindAuthenticate.provide(ctor) }

// DecorateAuthenticateHandler replaces the bound authenticate handler with
// what decorator returns; decorator takes the current
// server.AuthenticateFunc first (to wrap it), then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateAuthenticateHandler(decorator any) fx.Option {
	return bindAuthenticate.decorate(decorator)
}

// ReplaceAuthenticateHandler sets the authenticate handler to h, whatever
// was bound. See DecorateServerOptions for the scope it applies to.
func ReplaceAuthenticateHandler(h server.AuthenticateFunc) fx.Option {
	return bindAuthenticate.replace(h)
}

// ProvideValidateRoomHandler binds the server.ValidateRoomFunc returned by
// ctor, a constructor whose parameters are resolved from the app.
func ProvideValidateRoomHandler(ctor any) fx.Option { return bindValidateRoom.provide(ctor) }

// DecorateValidateRoomHandler replaces the bound validate-room handler with
// what decorator returns; decorator takes the current server.ValidateRoomFunc
// first, then any dependencies. The handler must be bound; to set one that
// is not, use ReplaceValidateRoomHandler. See DecorateServerOptions for the
// scope it applies to.
func DecorateValidateRoomHandler(decorator any) fx.Option {
	return bindValidateRoom.decorate(decorator)
}

// ReplaceValidateRoomHandler sets the validate-room handler to h (nil
// removes it), whatever was bound. See DecorateServerOptions for the scope.
func ReplaceValidateRoomHandler(h server.ValidateRoomFunc) fx.Option {
	return bindValidateRoom.replace(h)
}

// ProvideClientConnectedHandler binds the server.ClientConnectedFunc
// returned by ctor, a constructor whose parameters are resolved from the app.
func ProvideClientConnectedHandler(ctor any) fx.Option { return bindClientConnected.provide(ctor) }

// DecorateClientConnectedHandler replaces the bound client-connected
// handler with what decorator returns; decorator takes the current
// server.ClientConnectedFunc first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateClientConnectedHandler(decorator any) fx.Option {
	return bindClientConnected.decorate(decorator)
}

// ReplaceClientConnectedHandler sets the client-connected handler to h (nil
// removes it). See DecorateServerOptions for the scope it applies to.
func ReplaceClientConnectedHandler(h server.ClientConnectedFunc) fx.Option {
	return bindClientConnected.replace(h)
}

// ProvideClientDisconnectedHandler binds the server.ClientDisconnectedFunc
// returned by ctor, a constructor whose parameters are resolved from the app.
func ProvideClientDisconnectedHandler(ctor any) fx.Option {
	return bindClientDisconnected.provide(ctor)
}

// DecorateClientDisconnectedHandler replaces the bound client-disconnected
// handler with what decorator returns; decorator takes the current
// server.ClientDisconnectedFunc first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateClientDisconnectedHandler(decorator any) fx.Option {
	return bindClientDisconnected.decorate(decorator)
}

// ReplaceClientDisconnectedHandler sets the client-disconnected handler to h
// (nil removes it). See DecorateServerOptions for the scope it applies to.
func ReplaceClientDisconnectedHandler(h server.ClientDisconnectedFunc) fx.Option {
	return bindClientDisconnected.replace(h)
}

// ProvideMessageHandler binds the server.MessageHandler returned by ctor, a
// constructor whose parameters are resolved from the app.
func ProvideMessageHandler(ctor any) fx.Option { return bindMessage.provide(ctor) }

// DecorateMessageHandler replaces the bound message handler with what
// decorator returns; decorator takes the current server.MessageHandler
// first, then any dependencies. See DecorateServerOptions for the scope.
func DecorateMessageHandler(decorator any) fx.Option { return bindMessage.decorate(decorator) }

// ReplaceMessageHandler sets the message handler to h (nil removes it). See
// DecorateServerOptions for the scope it applies to.
func ReplaceMessageHandler(h server.MessageHandler) fx.Option { return bindMessage.replace(h) }

// ProvideOutboundTransformer binds the server.OutboundTransformer returned
// by ctor, a constructor whose parameters are resolved from the app.
func ProvideOutboundTransformer(ctor any) fx.Option { return bindOutbound.provide(ctor) }

// DecorateOutboundTransformer replaces the bound outbound transformer with
// what decorator returns; decorator takes the current
// server.OutboundTransformer first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateOutboundTransformer(decorator any) fx.Option { return bindOutbound.decorate(decorator) }

// ReplaceOutboundTransformer sets the outbound transformer to t (nil removes
// it). See DecorateServerOptions for the scope it applies to.
func ReplaceOutboundTransformer(t server.OutboundTransformer) fx.Option {
	return bindOutbound.replace(t)
}

// ProvideHandshakeHandler binds the server.HandshakeFunc returned by ctor, a
// constructor whose parameters are resolved from the app.
func ProvideHandshakeHandler(ctor any) fx.Option { return bindHandshake.provide(ctor) }

// DecorateHandshakeHandler replaces the bound handshake handler with what
// decorator returns; decorator takes the current server.HandshakeFunc first,
// then any dependencies. See DecorateServerOptions for the scope.
func DecorateHandshakeHandler(decorator any) fx.Option { return bindHandshake.decorate(decorator) }

// ReplaceHandshakeHandler sets the handshake handler to h (nil removes it).
// See DecorateServerOptions for the scope it applies to.
func ReplaceHandshakeHandler(h server.HandshakeFunc) fx.Option { return bindHandshake.replace(h) }

// ProvideInboundTransformer binds the server.InboundTransformer returned by
// ctor, a constructor whose parameters are resolved from the app.
func ProvideInboundTransformer(ctor any) fx.Option { return bindInbound.provide(ctor) }

// DecorateInboundTransformer replaces the bound inbound transformer with
// what decorator returns; decorator takes the current
// server.InboundTransformer first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateInboundTransformer(decorator any) fx.Option { return bindInbound.decorate(decorator) }

// ReplaceInboundTransformer sets the inbound transformer to t (nil removes
// it). See DecorateServerOptions for the scope it applies to.
func ReplaceInboundTransformer(t server.InboundTransformer) fx.Option {
	return bindInbound.replace(t)
}

// ProvideEncryption binds a ready encryption pair (server/encryption): ctor
// returns the *encryption.Pair (optionally with an error) and may take the
// app's services. The pair is provided unnamed (for Pair.Exchange in
// optional-encryption flows) and its handshake handler, outbound and inbound
// transformers are bound under their keys; each client's key is dropped when
// it disconnects. Set ServerOptions.RequireEncryption to make every client
// complete the handshake; without it, encryption is the app's choice per
// client (EnableClientEncryption).
func ProvideEncryption(ctor any) fx.Option {
	return fx.Options(
		fx.Provide(ctor),
		ProvideHandshakeHandler(func(p *encryption.Pair) server.HandshakeFunc { return p.Handshake() }),
		ProvideOutboundTransformer(func(p *encryption.Pair) server.OutboundTransformer { return p.Outbound() }),
		ProvideInboundTransformer(func(p *encryption.Pair) server.InboundTransformer { return p.Inbound() }),
		fx.Provide(fx.Annotate(
			func(p *encryption.Pair) server.ClientDisconnectedFunc { return p.WrapDisconnected(nil) },
			fx.ResultTags(`group:"`+GroupDisconnectHooks+`"`),
		)),
	)
}
