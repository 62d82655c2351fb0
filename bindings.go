package wscomponent

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// The binding keys. Each is the fx value name (`name:"…"`) under which the
// component looks for one binding; they keep the Ignis strings so that a
// reader of both frameworks recognises them. Bind a key with its typed
// Provide helper (ProvideAuthenticateHandler, …), once, and override it
// with the matching Decorate or Replace helper. Module provides the keys
// from what the helpers bound, so the app may take a binding by name, but a
// plain fx.Provide under a key's name conflicts with Module's provider.
const (
	// KeyServerOptions names the ServerOptions (optional; zero fields take
	// the defaults documented on server.Config).
	KeyServerOptions = "@app/websocket/server-options"
	// KeyRedisConnection names the redis.UniversalClient carrying the
	// Pub/Sub traffic between instances (required unless ProvideLocalBus
	// is used).
	KeyRedisConnection = "@app/websocket/redis-connection"
	// KeyLocalBus names the LocalBus choice that ProvideLocalBus binds: the
	// component runs one instance without Redis. Exactly one of it and
	// KeyRedisConnection must be bound.
	KeyLocalBus = "@app/websocket/local-bus"
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

// LocalBus is bound (true) under KeyLocalBus by ProvideLocalBus: the
// component uses the in-process bus (server.Options.LocalBus) instead of
// Redis.
type LocalBus bool

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
	// required: the component does not start without the binding.
	required bool
}

var (
	bindServerOptions      = binding[ServerOptions]{key: KeyServerOptions, what: "server options", suffix: "ServerOptions", zeroOK: true}
	bindRedisConnection    = binding[redis.UniversalClient]{key: KeyRedisConnection, what: "Redis connection", suffix: "RedisConnection", required: true}
	bindLocalBus           = binding[LocalBus]{key: KeyLocalBus, what: "local bus", suffix: "LocalBus"}
	bindAuthenticate       = binding[server.AuthenticateFunc]{key: KeyAuthenticateHandler, what: "authenticate handler", suffix: "AuthenticateHandler", required: true}
	bindValidateRoom       = binding[server.ValidateRoomFunc]{key: KeyValidateRoomHandler, what: "validate-room handler", suffix: "ValidateRoomHandler"}
	bindClientConnected    = binding[server.ClientConnectedFunc]{key: KeyClientConnectedHandler, what: "client-connected handler", suffix: "ClientConnectedHandler"}
	bindClientDisconnected = binding[server.ClientDisconnectedFunc]{key: KeyClientDisconnectedHandler, what: "client-disconnected handler", suffix: "ClientDisconnectedHandler"}
	bindMessage            = binding[server.MessageHandler]{key: KeyMessageHandler, what: "message handler", suffix: "MessageHandler"}
	bindOutbound           = binding[server.OutboundTransformer]{key: KeyOutboundTransformer, what: "outbound transformer", suffix: "OutboundTransformer"}
	bindHandshake          = binding[server.HandshakeFunc]{key: KeyHandshakeHandler, what: "handshake handler", suffix: "HandshakeHandler"}
	bindInbound            = binding[server.InboundTransformer]{key: KeyInboundTransformer, what: "inbound transformer", suffix: "InboundTransformer"}
)

// callSite is where the app called one of the exported helpers; messages
// name it so that the user can find the call.
type callSite struct {
	helper string // e.g. "ProvideAuthenticateHandler"
	file   string
	line   int
}

// caller returns where the app called the exported helper named helper.
// Only that helper may call it (it skips exactly one frame).
func caller(helper string) *callSite {
	s := &callSite{helper: helper, file: "an unknown file"}
	if _, file, line, ok := runtime.Caller(2); ok {
		s.file, s.line = file, line
	}
	return s
}

func (s *callSite) String() string {
	return fmt.Sprintf("wscomponent.%s at %s:%d", s.helper, s.file, s.line)
}

// How a Provide helper's binding reaches the component.
//
// fx refuses a second provider of one name as soon as it is provided,
// before any code of ours runs, and its message cannot point at the first
// provider (the helpers build their constructors with reflect, so fx names
// reflect.makeFuncStub for both). So a Provide helper does not provide the
// key itself: it puts the user's constructor, privately, in a module of its
// own, and adds a provision, carrying the value and the call site, to a
// value group. Module provides each key from that group (binding.resolve),
// which can then name every call site of a key bound twice. The provision
// takes the value as optional, as the component takes its bindings, so a
// constructor whose dependencies are missing reaches it as nil instead of
// failing with fx's message about reflect.makeFuncStub.

// held carries what the constructor gave out of the private scope of its
// Provide helper; a nil *held means fx could not build the constructor.
// Its error travels here rather than through fx, so that a key bound twice
// is reported as such whatever the constructors did.
type held[T any] struct {
	v   T
	err error // the constructor's error, or the report of its nil result
}

// provision is one Provide helper call's binding of a key.
type provision[T any] struct {
	at   *callSite
	ctor reflect.Type
	held *held[T]
}

type provisionIn[T any] struct {
	fx.In

	Held *held[T] `optional:"true"`
}

type provisionOut[T any] struct {
	fx.Out

	Provision *provision[T] `group:"wscomponent/provisions"`
}

// provisionsIn is every provision of one key (the group holds one type per
// key).
type provisionsIn[T any] struct {
	fx.In

	All []*provision[T] `group:"wscomponent/provisions"`
}

var (
	errorType  = reflect.TypeFor[error]()
	inType     = reflect.TypeFor[fx.In]()
	helperType = reflect.TypeFor[*server.Helper]()
)

// provide binds the result of ctor, given to the helper called at at.
func (b binding[T]) provide(at *callSite, ctor any) fx.Option {
	ft, err := b.checkFunc(at.helper, ctor, "a constructor (a func returning %[1]s, or %[1]s and an error)")
	if err == nil {
		err = b.checkResults(at.helper, ft)
	}
	if err == nil {
		err = b.checkNoHelper(at, ft, "constructor")
	}
	if err != nil {
		return fx.Error(err)
	}
	fn := reflect.ValueOf(ctor)
	ctorName := funcName(fn)
	build := reflect.MakeFunc(
		reflect.FuncOf(paramTypes(ft), []reflect.Type{reflect.TypeFor[*held[T]]()}, ft.IsVariadic()),
		func(args []reflect.Value) []reflect.Value {
			out := call(fn, ft, args)
			h := new(held[T])
			switch {
			case len(out) == 2 && !out[1].IsNil():
				h.err = fmt.Errorf("wscomponent: the %s constructor %s passed to %s failed: %w",
					b.what, ctorName, at, out[1].Interface().(error))
			case !b.zeroOK && isNil(out[0]):
				h.err = b.nilResult(at, ctorName)
			default:
				reflect.ValueOf(&h.v).Elem().Set(out[0])
			}
			return []reflect.Value{reflect.ValueOf(h)}
		})
	return fx.Module("wscomponent."+at.helper,
		fx.Provide(build.Interface(), fx.Private),
		fx.Provide(func(in provisionIn[T]) provisionOut[T] {
			return provisionOut[T]{Provision: &provision[T]{at: at, ctor: ft, held: in.Held}}
		}),
	)
}

// resolve is the component's constructor of b.key (see Module): the one
// value bound with a Provide helper, or the zero value when none is.
func (b binding[T]) resolve(in provisionsIn[T]) (T, error) {
	var zero T
	switch len(in.All) {
	case 0:
		return zero, nil
	case 1:
		p := in.All[0]
		if p.held == nil {
			return zero, fmt.Errorf("wscomponent: the %s bound with wscomponent.%s could not be built: "+
				"fx could not resolve every parameter of its constructor (%s, given at %s:%d); provide them in the app",
				b.what, p.at.helper, p.ctor, p.at.file, p.at.line)
		}
		return p.held.v, p.held.err
	}
	sites := make([]*callSite, len(in.All))
	for i, p := range in.All {
		sites[i] = p.at
	}
	// fx hands out a value group in random order.
	slices.SortFunc(sites, func(a, b *callSite) int {
		return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
	})
	list := make([]string, len(sites))
	for i, s := range sites {
		list[i] = s.String()
	}
	times := "twice"
	if len(sites) > 2 {
		times = fmt.Sprintf("%d times", len(sites))
	}
	return zero, fmt.Errorf("wscomponent: the key %s (%s) is already provided: it is bound %s, by %s; "+
		"keep one, and override it where needed (tests) with wscomponent.Replace%s or wscomponent.Decorate%s",
		b.key, b.what, times, strings.Join(list, " and by "), b.suffix, b.suffix)
}

// provideKey is Module's provider of b.key. It uses fx.Annotated rather
// than fx.Annotate because fx then names binding.resolve in its errors
// instead of reflect.makeFuncStub.
func (b binding[T]) provideKey() fx.Option {
	return fx.Provide(fx.Annotated{Name: b.key, Target: b.resolve})
}

// nilResult reports a constructor that returned a nil value.
func (b binding[T]) nilResult(at *callSite, ctorName string) error {
	fix := fmt.Sprintf("make it return a non-nil %s", reflect.TypeFor[T]())
	if !b.required {
		fix += fmt.Sprintf(", or leave out the wscomponent.%s call to bind none", at.helper)
	}
	return fmt.Errorf("wscomponent: the %s constructor %s passed to %s returned a nil %s: %s",
		b.what, ctorName, at, reflect.TypeFor[T](), fix)
}

// checkNoHelper refuses a constructor or decorator that takes the helper:
// the component builds the helper from the bindings, so fx would only
// report a dependency cycle between reflect.makeFuncStub and the component.
func (b binding[T]) checkNoHelper(at *callSite, ft reflect.Type, role string) error {
	if !takesHelper(ft) {
		return nil
	}
	hint := fmt.Sprintf("the helper cannot be an input of its own %s", b.what)
	if reflect.TypeFor[T]().Kind() == reflect.Func {
		hint = "inside the handler, get the helper with server.FromContext(ctx): every callback context carries it"
	}
	return helperCycleError(at, ft, role, b.what, hint)
}

func helperCycleError(at *callSite, ft reflect.Type, role, what, hint string) error {
	return fmt.Errorf("wscomponent: %s: the %s %s takes a *server.Helper, but the component builds the helper "+
		"from the %s, so fx would report a dependency cycle; %s", at, role, ft, what, hint)
}

// takesHelper reports whether ft takes a *server.Helper, as a parameter or
// as a field of an fx.In struct (nested fx.In structs included).
func takesHelper(ft reflect.Type) bool {
	return slices.ContainsFunc(paramTypes(ft), isOrHoldsHelper)
}

func isOrHoldsHelper(t reflect.Type) bool {
	if t == helperType {
		return true
	}
	if !isIn(t) {
		return false
	}
	for i := range t.NumField() {
		if isOrHoldsHelper(t.Field(i).Type) {
			return true
		}
	}
	return false
}

// An override is one Decorate or Replace helper call. fx applies a
// decorator only to the fx.Module it is given in and the modules inside
// it, so one given inside a sibling module of Module() silently changes
// nothing for the component. Each call therefore also adds an override to
// a value group; its decorator marks it applied when fx runs it, which fx
// does while it resolves the component's Params, and the component then
// fails on any override left unapplied.
type override struct {
	at      *callSite // identifies the call too
	what    string
	applied bool // fx builds the graph on one goroutine
}

type overrideOut struct {
	fx.Out

	Override *override `group:"wscomponent/overrides"`
}

var overridesType = reflect.TypeFor[[]*override]()

const overridesTag = `group:"wscomponent/overrides"`

// declare adds the override of the helper call at at to the group.
func (b binding[T]) declare(at *callSite) fx.Option {
	return fx.Provide(func() overrideOut {
		return overrideOut{Override: &override{at: at, what: b.what}}
	})
}

// markApplied marks the overrides of the helper call at at.
func markApplied(all []*override, at *callSite) {
	for _, o := range all {
		if o.at == at {
			o.applied = true
		}
	}
}

// checkOverrides reports the Decorate and Replace calls that had no effect
// on the component.
func checkOverrides(all []*override) error {
	var errs []error
	for _, o := range all {
		if !o.applied {
			errs = append(errs, fmt.Errorf("wscomponent: %s has no effect on the component's %s: "+
				"fx applies a Decorate or Replace only to the fx.Module it is given in and the modules inside it, "+
				"and this one is given in a module that does not contain wscomponent.Module() "+
				"(or another override of the key, nearer the component, hides it); "+
				"give it among the top-level options of fx.New, or in the module that contains wscomponent.Module()",
				o.at, o.what))
		}
	}
	return errors.Join(errs...)
}

// decorate binds decorator(old, deps…), given to the helper called at at,
// under b.key in place of old.
func (b binding[T]) decorate(at *callSite, decorator any) fx.Option {
	ft, err := b.checkFunc(at.helper, decorator, "a decorator (a func taking the current %[1]s first and returning the new one)")
	if err == nil {
		err = b.checkDecoratorParams(at.helper, ft)
	}
	if err == nil {
		err = b.checkResults(at.helper, ft)
	}
	if err == nil {
		err = b.checkNoHelper(at, ft, "decorator")
	}
	if err != nil {
		return fx.Error(err)
	}
	want := reflect.TypeFor[T]()
	fn := reflect.ValueOf(decorator)
	// The wrapper takes the current value as optional, so that it can say
	// what is wrong instead of fx's missing type, and the overrides.
	in := paramTypes(ft)
	in = append([]reflect.Type{in[0], overridesType}, in[1:]...)
	wrapped := reflect.MakeFunc(
		reflect.FuncOf(in, []reflect.Type{want, errorType}, ft.IsVariadic()),
		func(args []reflect.Value) []reflect.Value {
			markApplied(args[1].Interface().([]*override), at)
			if err := b.checkCurrent(at, args[0]); err != nil {
				return []reflect.Value{reflect.Zero(want), reflect.ValueOf(&err).Elem()}
			}
			args = append(args[:1], args[2:]...)
			return convertResults(want, call(fn, ft, args))
		})
	return fx.Options(
		fx.Decorate(fx.Annotate(wrapped.Interface(),
			fx.ParamTags(nameTag(b.key)+` optional:"true"`, overridesTag),
			fx.ResultTags(nameTag(b.key)))),
		b.declare(at),
	)
}

// checkCurrent reports a decorator that would get a zero current value:
// nothing is bound (a constructor that could not be built or returned nil
// fails the app before). Zero ServerOptions are fine: they mean "all
// defaults".
func (b binding[T]) checkCurrent(at *callSite, current reflect.Value) error {
	if !current.IsZero() || b.zeroOK {
		return nil
	}
	return fmt.Errorf("wscomponent: Decorate%[1]s: no %[2]s is bound to decorate: bind one with "+
		"wscomponent.Provide%[1]s(...), or set it with wscomponent.Replace%[1]s(...) (decorator given at %[3]s:%[4]d)",
		b.suffix, b.what, at.file, at.line)
}

// replace binds v, given to the helper called at at, under b.key, whatever
// was bound before.
func (b binding[T]) replace(at *callSite, v T) fx.Option {
	return fx.Options(
		fx.Decorate(fx.Annotate(func(all []*override) T {
			markApplied(all, at)
			return v
		}, fx.ParamTags(overridesTag), fx.ResultTags(nameTag(b.key)))),
		b.declare(at),
	)
}

// checkFunc checks that f is a func and returns its type.
func (b binding[T]) checkFunc(helper string, f any, want string) (reflect.Type, error) {
	t := reflect.TypeFor[T]()
	wantText := fmt.Sprintf(want, t)
	if f == nil {
		return nil, fmt.Errorf("wscomponent: %s: got nil, want %s", helper, wantText)
	}
	ft := reflect.TypeOf(f)
	if ft.Kind() == reflect.Func && !ft.AssignableTo(t) {
		return ft, nil
	}
	hint := ""
	if ft.AssignableTo(t) {
		hint = fmt.Sprintf("; to bind a %s value, wrap it: func() %s { return v }", t, t)
	}
	return nil, fmt.Errorf("wscomponent: %s: got %s, want %s%s", helper, ft, wantText, hint)
}

// checkResults checks that ft returns T (or a type assignable to it),
// optionally followed by an error.
func (b binding[T]) checkResults(helper string, ft reflect.Type) error {
	t := reflect.TypeFor[T]()
	n := ft.NumOut()
	switch {
	case n == 0 || n > 2 || (n == 2 && ft.Out(1) != errorType):
		return fmt.Errorf("wscomponent: %s: %s must return %s, or %s and an error", helper, ft, t, t)
	case !ft.Out(0).AssignableTo(t):
		return fmt.Errorf("wscomponent: %s: %s returns %s, which is not a %s", helper, ft, ft.Out(0), t)
	}
	return nil
}

// checkDecoratorParams checks that ft takes T first and no fx.In struct
// after it (the first parameter is named with fx.ParamTags, which fx does
// not combine with fx.In structs).
func (b binding[T]) checkDecoratorParams(helper string, ft reflect.Type) error {
	t := reflect.TypeFor[T]()
	if ft.NumIn() == 0 || ft.In(0) != t {
		return fmt.Errorf("wscomponent: %s: %s must take the current %s as its first parameter", helper, ft, t)
	}
	for i := 1; i < ft.NumIn(); i++ {
		if isIn(ft.In(i)) {
			return fmt.Errorf("wscomponent: %s: %s takes an fx.In struct; take the dependencies as plain parameters", helper, ft)
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

// isNil reports a nil func, pointer, … including a nil pointer in an
// interface (a constructor returning a nil *redis.Client as a
// redis.UniversalClient).
func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Interface:
		return v.IsNil() || isNil(v.Elem())
	case reflect.Func, reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// funcName is fn's name without its package path, e.g.
// "main.newAuthenticate" or "main.main.func1".
func funcName(fn reflect.Value) string {
	f := runtime.FuncForPC(fn.Pointer())
	if f == nil {
		return fn.Type().String()
	}
	name := f.Name()
	return name[strings.LastIndex(name, "/")+1:]
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
func ProvideServerOptions(ctor any) fx.Option {
	return bindServerOptions.provide(caller("ProvideServerOptions"), ctor)
}

// SupplyServerOptions binds opts as the ServerOptions.
func SupplyServerOptions(opts ServerOptions) fx.Option {
	return bindServerOptions.provide(caller("SupplyServerOptions"), func() ServerOptions { return opts })
}

// DecorateServerOptions replaces the bound ServerOptions with what
// decorator returns. decorator takes the current ServerOptions first, then
// any dependencies from the app, and returns the new ServerOptions
// (optionally with an error).
//
// Like every Decorate and Replace helper it is an fx.Decorate: it applies to
// the module it is given in and the modules inside it. Give it among the
// top-level options of fx.New (or in a module that contains Module()); given
// inside a sibling module it could not change what the component uses, so
// the component fails the app, naming the call. A key takes one Decorate or
// Replace per module.
//
// The other Decorate helpers need a bound value to decorate and fail the
// app otherwise (use the Replace helper to set one); ServerOptions nobody
// bound reach decorator as the zero ServerOptions, meaning all defaults.
func DecorateServerOptions(decorator any) fx.Option {
	return bindServerOptions.decorate(caller("DecorateServerOptions"), decorator)
}

// ReplaceServerOptions sets the ServerOptions to opts, whatever was bound.
// See DecorateServerOptions for the scope it applies to.
func ReplaceServerOptions(opts ServerOptions) fx.Option {
	return bindServerOptions.replace(caller("ReplaceServerOptions"), opts)
}

// ProvideRedisConnection binds the Redis connection returned by ctor, a
// constructor whose parameters are resolved from the app. It may return
// any redis.UniversalClient (*redis.Client, *redis.ClusterClient, …),
// optionally with an error. The app owns the connection and closes it.
func ProvideRedisConnection(ctor any) fx.Option {
	return bindRedisConnection.provide(caller("ProvideRedisConnection"), ctor)
}

// DecorateRedisConnection replaces the bound Redis connection with what
// decorator returns; decorator takes the current redis.UniversalClient
// first, then any dependencies. See DecorateServerOptions for the scope.
func DecorateRedisConnection(decorator any) fx.Option {
	return bindRedisConnection.decorate(caller("DecorateRedisConnection"), decorator)
}

// ReplaceRedisConnection sets the Redis connection to rdb, whatever was
// bound. See DecorateServerOptions for the scope it applies to.
func ReplaceRedisConnection(rdb redis.UniversalClient) fx.Option {
	return bindRedisConnection.replace(caller("ReplaceRedisConnection"), rdb)
}

// ProvideLocalBus runs the component as one instance without Redis
// (server.Options.LocalBus): messages reach this instance's clients only,
// and no Redis connection may be bound. For a single server, development
// and tests; a fleet needs ProvideRedisConnection. Binding it twice, or
// with a Redis connection, fails the app with a message naming the calls.
func ProvideLocalBus() fx.Option {
	return bindLocalBus.provide(caller("ProvideLocalBus"), func() LocalBus { return true })
}

// ProvideAuthenticateHandler binds the server.AuthenticateFunc returned by
// ctor, a constructor whose parameters are resolved from the app:
//
//	wscomponent.ProvideAuthenticateHandler(func(users *Users) server.AuthenticateFunc {
//		return func(ctx context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) { … }
//	})
func ProvideAuthenticateHandler(ctor any) fx.Option {
	return bindAuthenticate.provide(caller("ProvideAuthenticateHandler"), ctor)
}

// DecorateAuthenticateHandler replaces the bound authenticate handler with
// what decorator returns; decorator takes the current
// server.AuthenticateFunc first (to wrap it), then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateAuthenticateHandler(decorator any) fx.Option {
	return bindAuthenticate.decorate(caller("DecorateAuthenticateHandler"), decorator)
}

// ReplaceAuthenticateHandler sets the authenticate handler to h, whatever
// was bound. See DecorateServerOptions for the scope it applies to.
func ReplaceAuthenticateHandler(h server.AuthenticateFunc) fx.Option {
	return bindAuthenticate.replace(caller("ReplaceAuthenticateHandler"), h)
}

// ProvideValidateRoomHandler binds the server.ValidateRoomFunc returned by
// ctor, a constructor whose parameters are resolved from the app.
func ProvideValidateRoomHandler(ctor any) fx.Option {
	return bindValidateRoom.provide(caller("ProvideValidateRoomHandler"), ctor)
}

// DecorateValidateRoomHandler replaces the bound validate-room handler with
// what decorator returns; decorator takes the current server.ValidateRoomFunc
// first, then any dependencies. The handler must be bound; to set one that
// is not, use ReplaceValidateRoomHandler. See DecorateServerOptions for the
// scope it applies to.
func DecorateValidateRoomHandler(decorator any) fx.Option {
	return bindValidateRoom.decorate(caller("DecorateValidateRoomHandler"), decorator)
}

// ReplaceValidateRoomHandler sets the validate-room handler to h (nil
// removes it), whatever was bound. See DecorateServerOptions for the scope.
func ReplaceValidateRoomHandler(h server.ValidateRoomFunc) fx.Option {
	return bindValidateRoom.replace(caller("ReplaceValidateRoomHandler"), h)
}

// ProvideClientConnectedHandler binds the server.ClientConnectedFunc
// returned by ctor, a constructor whose parameters are resolved from the app.
func ProvideClientConnectedHandler(ctor any) fx.Option {
	return bindClientConnected.provide(caller("ProvideClientConnectedHandler"), ctor)
}

// DecorateClientConnectedHandler replaces the bound client-connected
// handler with what decorator returns; decorator takes the current
// server.ClientConnectedFunc first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateClientConnectedHandler(decorator any) fx.Option {
	return bindClientConnected.decorate(caller("DecorateClientConnectedHandler"), decorator)
}

// ReplaceClientConnectedHandler sets the client-connected handler to h (nil
// removes it). See DecorateServerOptions for the scope it applies to.
func ReplaceClientConnectedHandler(h server.ClientConnectedFunc) fx.Option {
	return bindClientConnected.replace(caller("ReplaceClientConnectedHandler"), h)
}

// ProvideClientDisconnectedHandler binds the server.ClientDisconnectedFunc
// returned by ctor, a constructor whose parameters are resolved from the app.
func ProvideClientDisconnectedHandler(ctor any) fx.Option {
	return bindClientDisconnected.provide(caller("ProvideClientDisconnectedHandler"), ctor)
}

// DecorateClientDisconnectedHandler replaces the bound client-disconnected
// handler with what decorator returns; decorator takes the current
// server.ClientDisconnectedFunc first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateClientDisconnectedHandler(decorator any) fx.Option {
	return bindClientDisconnected.decorate(caller("DecorateClientDisconnectedHandler"), decorator)
}

// ReplaceClientDisconnectedHandler sets the client-disconnected handler to h
// (nil removes it). See DecorateServerOptions for the scope it applies to.
func ReplaceClientDisconnectedHandler(h server.ClientDisconnectedFunc) fx.Option {
	return bindClientDisconnected.replace(caller("ReplaceClientDisconnectedHandler"), h)
}

// ProvideMessageHandler binds the server.MessageHandler returned by ctor, a
// constructor whose parameters are resolved from the app.
func ProvideMessageHandler(ctor any) fx.Option {
	return bindMessage.provide(caller("ProvideMessageHandler"), ctor)
}

// DecorateMessageHandler replaces the bound message handler with what
// decorator returns; decorator takes the current server.MessageHandler
// first, then any dependencies. See DecorateServerOptions for the scope.
func DecorateMessageHandler(decorator any) fx.Option {
	return bindMessage.decorate(caller("DecorateMessageHandler"), decorator)
}

// ReplaceMessageHandler sets the message handler to h (nil removes it). See
// DecorateServerOptions for the scope it applies to.
func ReplaceMessageHandler(h server.MessageHandler) fx.Option {
	return bindMessage.replace(caller("ReplaceMessageHandler"), h)
}

// ProvideOutboundTransformer binds the server.OutboundTransformer returned
// by ctor, a constructor whose parameters are resolved from the app.
func ProvideOutboundTransformer(ctor any) fx.Option {
	return bindOutbound.provide(caller("ProvideOutboundTransformer"), ctor)
}

// DecorateOutboundTransformer replaces the bound outbound transformer with
// what decorator returns; decorator takes the current
// server.OutboundTransformer first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateOutboundTransformer(decorator any) fx.Option {
	return bindOutbound.decorate(caller("DecorateOutboundTransformer"), decorator)
}

// ReplaceOutboundTransformer sets the outbound transformer to t (nil removes
// it). See DecorateServerOptions for the scope it applies to.
func ReplaceOutboundTransformer(t server.OutboundTransformer) fx.Option {
	return bindOutbound.replace(caller("ReplaceOutboundTransformer"), t)
}

// ProvideHandshakeHandler binds the server.HandshakeFunc returned by ctor, a
// constructor whose parameters are resolved from the app.
func ProvideHandshakeHandler(ctor any) fx.Option {
	return bindHandshake.provide(caller("ProvideHandshakeHandler"), ctor)
}

// DecorateHandshakeHandler replaces the bound handshake handler with what
// decorator returns; decorator takes the current server.HandshakeFunc first,
// then any dependencies. See DecorateServerOptions for the scope.
func DecorateHandshakeHandler(decorator any) fx.Option {
	return bindHandshake.decorate(caller("DecorateHandshakeHandler"), decorator)
}

// ReplaceHandshakeHandler sets the handshake handler to h (nil removes it).
// See DecorateServerOptions for the scope it applies to.
func ReplaceHandshakeHandler(h server.HandshakeFunc) fx.Option {
	return bindHandshake.replace(caller("ReplaceHandshakeHandler"), h)
}

// ProvideInboundTransformer binds the server.InboundTransformer returned by
// ctor, a constructor whose parameters are resolved from the app.
func ProvideInboundTransformer(ctor any) fx.Option {
	return bindInbound.provide(caller("ProvideInboundTransformer"), ctor)
}

// DecorateInboundTransformer replaces the bound inbound transformer with
// what decorator returns; decorator takes the current
// server.InboundTransformer first, then any dependencies. See
// DecorateServerOptions for the scope it applies to.
func DecorateInboundTransformer(decorator any) fx.Option {
	return bindInbound.decorate(caller("DecorateInboundTransformer"), decorator)
}

// ReplaceInboundTransformer sets the inbound transformer to t (nil removes
// it). See DecorateServerOptions for the scope it applies to.
func ReplaceInboundTransformer(t server.InboundTransformer) fx.Option {
	return bindInbound.replace(caller("ReplaceInboundTransformer"), t)
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
	at := caller("ProvideEncryption")
	if ft := reflect.TypeOf(ctor); ft != nil && ft.Kind() == reflect.Func && takesHelper(ft) {
		return fx.Error(helperCycleError(at, ft, "constructor", "encryption pair's handshake handler and transformers",
			"the pair cannot depend on the helper"))
	}
	return fx.Options(
		fx.Provide(ctor),
		bindHandshake.provide(at, func(p *encryption.Pair) server.HandshakeFunc { return p.Handshake() }),
		bindOutbound.provide(at, func(p *encryption.Pair) server.OutboundTransformer { return p.Outbound() }),
		bindInbound.provide(at, func(p *encryption.Pair) server.InboundTransformer { return p.Inbound() }),
		fx.Provide(fx.Annotate(
			func(p *encryption.Pair) server.ClientDisconnectedFunc { return p.WrapDisconnected(nil) },
			fx.ResultTags(`group:"`+GroupDisconnectHooks+`"`),
		)),
	)
}
