package wscomponent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// These tests build real fx apps with the component and check that each
// mistake fails fx.New with a message that names the cause, the helper,
// the call site and the fix. No Redis is contacted before app.Start, so an
// unused client is enough.

// line returns "fxerrors_test.go:<n>" for the line it is called on. A call
// whose site a test checks starts on the same line as a call to line.
func line() string {
	_, file, n, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", filepath.Base(file), n)
}

// appError builds an app with Echo, the component, an unused Redis
// connection (unless noRedis) and opts, and returns fx.New's error.
func appError(t *testing.T, noRedis bool, opts ...fx.Option) error {
	t.Helper()
	base := []fx.Option{fx.NopLogger, fx.Provide(echo.New, newTokens), wscomponent.Module()}
	if !noRedis {
		rdb := unusedRedis(t)
		base = append(base, wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }))
	}
	return fx.New(append(base, opts...)...).Err()
}

// checkError fails t unless err contains every want and no wantNot.
func checkError(t *testing.T, err error, want, wantNot []string) {
	t.Helper()
	if err == nil {
		t.Fatal("fx.New succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	for _, w := range wantNot {
		if strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ncontains %q", err, w)
		}
	}
}

func nilAuthenticate() server.AuthenticateFunc { return nil }

func nilValidateRoom(tokens) server.ValidateRoomFunc { return nil }

func nilClient() *redis.Client { return nil }

func nilUniversal() (redis.UniversalClient, error) { return nil, nil }

func TestNilBindingNamesConstructor(t *testing.T) {
	auth := wscomponent.ProvideAuthenticateHandler(newAuthenticate)
	tests := []struct {
		name    string
		noRedis bool
		give    fx.Option
		at      string
		want    []string
	}{
		{
			name: "required handler",
			give: wscomponent.ProvideAuthenticateHandler(nilAuthenticate), at: line(),
			want: []string{
				"wscomponent: the authenticate handler constructor wscomponent_test.nilAuthenticate passed to wscomponent.ProvideAuthenticateHandler at ",
				"returned a nil server.AuthenticateFunc: make it return a non-nil server.AuthenticateFunc",
			},
		},
		{
			name: "inline constructor",
			give: wscomponent.ProvideAuthenticateHandler(func() server.AuthenticateFunc { return nil }), at: line(),
			want: []string{"constructor wscomponent_test.TestNilBindingNamesConstructor.func", "returned a nil server.AuthenticateFunc"},
		},
		{
			name: "optional handler",
			give: fx.Options(auth, wscomponent.ProvideValidateRoomHandler(nilValidateRoom)), at: line(),
			want: []string{
				"the validate-room handler constructor wscomponent_test.nilValidateRoom passed to wscomponent.ProvideValidateRoomHandler",
				"returned a nil server.ValidateRoomFunc: make it return a non-nil server.ValidateRoomFunc, " +
					"or leave out the wscomponent.ProvideValidateRoomHandler call to bind none",
			},
		},
		{
			name: "transformer",
			give: fx.Options(auth, wscomponent.ProvideOutboundTransformer(func() server.OutboundTransformer { return nil })), at: line(),
			want: []string{"the outbound transformer constructor", "wscomponent.ProvideOutboundTransformer at", "returned a nil server.OutboundTransformer"},
		},
		{
			name:    "nil *redis.Client",
			noRedis: true,
			give:    fx.Options(auth, wscomponent.ProvideRedisConnection(nilClient)), at: line(),
			want: []string{
				"the Redis connection constructor wscomponent_test.nilClient passed to wscomponent.ProvideRedisConnection at",
				"returned a nil redis.UniversalClient",
			},
		},
		{
			name:    "nil redis.UniversalClient",
			noRedis: true,
			give:    fx.Options(auth, wscomponent.ProvideRedisConnection(nilUniversal)), at: line(),
			want: []string{"constructor wscomponent_test.nilUniversal passed to wscomponent.ProvideRedisConnection", "returned a nil redis.UniversalClient"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := appError(t, tt.noRedis, tt.give)
			checkError(t, err, append(tt.want, tt.at), []string{"bound: provide one with"})
		})
	}
}

// Zero ServerOptions mean "all defaults": not a mistake.
func TestZeroServerOptionsAreDefaults(t *testing.T) {
	err := appError(t, false,
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.ProvideServerOptions(func() wscomponent.ServerOptions { return wscomponent.ServerOptions{} }),
	)
	if err != nil {
		t.Fatal(err)
	}
}

func newPair() (*encryption.Pair, error) { return encryption.New(encryption.Options{}) }

func TestDuplicateBindingNamesBothCalls(t *testing.T) {
	auth := wscomponent.ProvideAuthenticateHandler(newAuthenticate)
	handshake := func() server.HandshakeFunc { return nil }
	t.Run("two Provide calls", func(t *testing.T) {
		first, firstAt := wscomponent.ProvideAuthenticateHandler(newAuthenticate), line()
		second, secondAt := wscomponent.ProvideAuthenticateHandler(nilAuthenticate), line()
		checkError(t, appError(t, false, first, second), []string{
			"wscomponent: the key " + wscomponent.KeyAuthenticateHandler + " (authenticate handler) is already provided: " +
				"it is bound twice, by wscomponent.ProvideAuthenticateHandler at ",
			firstAt, " and by wscomponent.ProvideAuthenticateHandler at ", secondAt,
			"keep one, and override it where needed (tests) with wscomponent.ReplaceAuthenticateHandler or wscomponent.DecorateAuthenticateHandler",
		}, []string{"makeFuncStub (", "returned a nil"})
	})
	t.Run("three calls", func(t *testing.T) {
		msg := func() server.MessageHandler { return nil }
		m := wscomponent.ProvideMessageHandler
		checkError(t, appError(t, false, auth, m(msg), m(msg), m(msg)),
			[]string{"(message handler) is already provided: it is bound 3 times, by "}, nil)
	})
	t.Run("Supply and Provide", func(t *testing.T) {
		supply, supplyAt := wscomponent.SupplyServerOptions(wscomponent.ServerOptions{}), line()
		provide, provideAt := wscomponent.ProvideServerOptions(func() wscomponent.ServerOptions { return wscomponent.ServerOptions{} }), line()
		checkError(t, appError(t, false, auth, supply, provide), []string{
			"(server options) is already provided: it is bound twice", "wscomponent.SupplyServerOptions at", supplyAt,
			"wscomponent.ProvideServerOptions at", provideAt,
		}, nil)
	})
	t.Run("ProvideEncryption and a handshake handler", func(t *testing.T) {
		enc, encAt := wscomponent.ProvideEncryption(newPair), line()
		hs, hsAt := wscomponent.ProvideHandshakeHandler(handshake), line()
		checkError(t, appError(t, false, auth, enc, hs), []string{
			"(handshake handler) is already provided: it is bound twice", "wscomponent.ProvideEncryption at", encAt,
			"wscomponent.ProvideHandshakeHandler at", hsAt,
		}, nil)
	})
}

func TestHandlerTakingHelperGetsHint(t *testing.T) {
	type withHelper struct {
		fx.In

		Tokens tokens
		WS     *server.Helper `name:"@app/websocket/instance"`
	}
	type nested struct {
		fx.In

		Inner withHelper
	}
	const fromContext = "inside the handler, get the helper with server.FromContext(ctx): every callback context carries it"
	tests := []struct {
		name string
		give fx.Option
		at   string
		want []string
	}{
		{
			name: "parameter",
			give: wscomponent.ProvideMessageHandler(func(*server.Helper) server.MessageHandler { return nil }), at: line(),
			want: []string{
				"wscomponent: wscomponent.ProvideMessageHandler at ",
				"the constructor func(*server.Helper) server.MessageHandler takes a *server.Helper, " +
					"but the component builds the helper from the message handler, so fx would report a dependency cycle; " + fromContext,
			},
		},
		{
			name: "fx.In field",
			give: wscomponent.ProvideAuthenticateHandler(func(withHelper) server.AuthenticateFunc { return nil }), at: line(),
			want: []string{"wscomponent.ProvideAuthenticateHandler at", "takes a *server.Helper", fromContext},
		},
		{
			name: "nested fx.In field",
			give: wscomponent.ProvideClientConnectedHandler(func(nested) server.ClientConnectedFunc { return nil }), at: line(),
			want: []string{"wscomponent.ProvideClientConnectedHandler at", "takes a *server.Helper", fromContext},
		},
		{
			name: "decorator",
			give: wscomponent.DecorateAuthenticateHandler(func(next server.AuthenticateFunc, _ *server.Helper) server.AuthenticateFunc { return next }), at: line(),
			want: []string{"wscomponent.DecorateAuthenticateHandler at", "the decorator func(server.AuthenticateFunc, *server.Helper)", fromContext},
		},
		{
			name: "not a handler",
			give: wscomponent.ProvideServerOptions(func(*server.Helper) wscomponent.ServerOptions { return wscomponent.ServerOptions{} }), at: line(),
			want: []string{"wscomponent.ProvideServerOptions at", "takes a *server.Helper", "the helper cannot be an input of its own server options"},
		},
		{
			name: "encryption pair",
			give: wscomponent.ProvideEncryption(func(*server.Helper) (*encryption.Pair, error) { return newPair() }), at: line(),
			want: []string{"wscomponent.ProvideEncryption at", "takes a *server.Helper"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := appError(t, false, wscomponent.ProvideAuthenticateHandler(newAuthenticate), tt.give)
			checkError(t, err, append(tt.want, tt.at), []string{"cycle detected"})
		})
	}
}

func TestOverrideThatCannotReachTheComponent(t *testing.T) {
	auth := wscomponent.ProvideAuthenticateHandler(newAuthenticate)
	const fix = "give it among the top-level options of fx.New, or in the module that contains wscomponent.Module()"

	t.Run("Replace in a sibling module", func(t *testing.T) {
		replacement := func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
			return &server.AuthResult{UserID: "replaced"}, nil
		}
		replace, at := wscomponent.ReplaceAuthenticateHandler(replacement), line()
		checkError(t, appError(t, false, auth, fx.Module("tests", replace)), []string{
			"wscomponent: wscomponent.ReplaceAuthenticateHandler at ", at,
			"has no effect on the component's authenticate handler: " +
				"fx applies a Decorate or Replace only to the fx.Module it is given in and the modules inside it, " +
				"and this one is given in a module that does not contain wscomponent.Module()",
			fix,
		}, nil)
	})

	t.Run("Decorate in a sibling module", func(t *testing.T) {
		messages := wscomponent.ProvideMessageHandler(func() server.MessageHandler {
			return func(context.Context, server.MessageEvent) error { return nil }
		})
		decorate, at := wscomponent.DecorateMessageHandler(func(next server.MessageHandler) server.MessageHandler { return next }), line()
		checkError(t, appError(t, false, auth, messages, fx.Module("tests", decorate)), []string{
			"wscomponent.DecorateMessageHandler at ", at, "has no effect on the component's message handler", fix,
		}, nil)
	})

	t.Run("Decorate hidden by a nearer Replace", func(t *testing.T) {
		rdb := unusedRedis(t)
		decorate, at := wscomponent.DecorateValidateRoomHandler(func(next server.ValidateRoomFunc) server.ValidateRoomFunc { return next }), line()
		err := fx.New(fx.NopLogger, fx.Provide(echo.New, newTokens), auth,
			wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }),
			fx.Module("websocket", wscomponent.Module(), wscomponent.ReplaceValidateRoomHandler(nil)),
			decorate,
		).Err()
		checkError(t, err, []string{
			"wscomponent.DecorateValidateRoomHandler at ", at,
			"another override of the key, nearer the component, hides it",
		}, []string{"ReplaceValidateRoomHandler at"})
	})
}

// An override given in the module that contains Module() does reach the
// component: a client is authenticated by the replacement.
func TestOverrideInModuleContainingComponent(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	startApp(t,
		srv.provide(),
		fx.Provide(newTokens),
		wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		fx.Module("websocket",
			wscomponent.Module(),
			wscomponent.ReplaceAuthenticateHandler(func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
				return &server.AuthResult{UserID: "replaced"}, nil
			}),
		),
	)
	if got := authenticate(t, dial(t, srv.url("/ws")), "anything"); got.UserID != "replaced" {
		t.Fatalf("userId %q, want replaced", got.UserID)
	}
}
