package wscomponent_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/server"
)

// The struct tags of Params and Result must be literal strings; this keeps
// them equal to the Key constants.
func TestParamsTagsMatchKeys(t *testing.T) {
	want := map[string]string{
		"Options":             wscomponent.KeyServerOptions,
		"Redis":               wscomponent.KeyRedisConnection,
		"LocalBus":            wscomponent.KeyLocalBus,
		"Authenticate":        wscomponent.KeyAuthenticateHandler,
		"ValidateRoom":        wscomponent.KeyValidateRoomHandler,
		"ClientConnected":     wscomponent.KeyClientConnectedHandler,
		"ClientDisconnected":  wscomponent.KeyClientDisconnectedHandler,
		"Message":             wscomponent.KeyMessageHandler,
		"OutboundTransformer": wscomponent.KeyOutboundTransformer,
		"Handshake":           wscomponent.KeyHandshakeHandler,
		"InboundTransformer":  wscomponent.KeyInboundTransformer,
	}
	pt := reflect.TypeFor[wscomponent.Params]()
	seen := map[string]bool{}
	for i := range pt.NumField() {
		f := pt.Field(i)
		name, ok := f.Tag.Lookup("name")
		if !ok {
			continue
		}
		if want[f.Name] != name {
			t.Errorf("Params.%s is named %q, want %q", f.Name, name, want[f.Name])
		}
		if f.Tag.Get("optional") != "true" {
			t.Errorf("Params.%s is not optional", f.Name)
		}
		seen[f.Name] = true
	}
	for field := range want {
		if !seen[field] {
			t.Errorf("Params has no named field %s", field)
		}
	}

	f, ok := reflect.TypeFor[wscomponent.Result]().FieldByName("Instance")
	if !ok || f.Tag.Get("name") != wscomponent.KeyInstance {
		t.Errorf("Result.Instance tag %q, want name %q", f.Tag, wscomponent.KeyInstance)
	}
}

// Each helper checks what it is given before fx runs anything.
func TestHelperArgumentErrors(t *testing.T) {
	authFunc := server.AuthenticateFunc(func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
		return nil, nil
	})
	tests := []struct {
		name string
		give fx.Option
		want string
	}{
		{
			name: "nil constructor",
			give: wscomponent.ProvideAuthenticateHandler(nil),
			want: "wscomponent: ProvideAuthenticateHandler: got nil, want a constructor (a func returning server.AuthenticateFunc, or server.AuthenticateFunc and an error)",
		},
		{
			name: "not a func",
			give: wscomponent.ProvideRedisConnection(42),
			want: "wscomponent: ProvideRedisConnection: got int, want a constructor",
		},
		{
			name: "the handler itself",
			give: wscomponent.ProvideAuthenticateHandler(authFunc),
			want: "to bind a server.AuthenticateFunc value, wrap it: func() server.AuthenticateFunc { return v }",
		},
		{
			name: "a value instead of a constructor",
			give: wscomponent.ProvideServerOptions(wscomponent.ServerOptions{}),
			want: "wscomponent: ProvideServerOptions: got server.Config, want a constructor",
		},
		{
			name: "wrong result type",
			give: wscomponent.ProvideMessageHandler(func() server.AuthenticateFunc { return nil }),
			want: "wscomponent: ProvideMessageHandler: func() server.AuthenticateFunc returns server.AuthenticateFunc, which is not a server.MessageHandler",
		},
		{
			name: "concrete type that is not a UniversalClient",
			give: wscomponent.ProvideRedisConnection(func() *redis.Options { return nil }),
			want: "returns *redis.Options, which is not a redis.UniversalClient",
		},
		{
			name: "second result not an error",
			give: wscomponent.ProvideValidateRoomHandler(func() (server.ValidateRoomFunc, int) { return nil, 0 }),
			want: "must return server.ValidateRoomFunc, or server.ValidateRoomFunc and an error",
		},
		{
			name: "no result",
			give: wscomponent.ProvideHandshakeHandler(func() {}),
			want: "wscomponent: ProvideHandshakeHandler: func() must return server.HandshakeFunc",
		},
		{
			name: "decorator without the current value first",
			give: wscomponent.DecorateAuthenticateHandler(func() server.AuthenticateFunc { return nil }),
			want: "wscomponent: DecorateAuthenticateHandler: func() server.AuthenticateFunc must take the current server.AuthenticateFunc as its first parameter",
		},
		{
			name: "decorator with an fx.In struct",
			give: wscomponent.DecorateMessageHandler(func(server.MessageHandler, struct{ fx.In }) server.MessageHandler { return nil }),
			want: "takes an fx.In struct; take the dependencies as plain parameters",
		},
		{
			name: "decorator given a value",
			give: wscomponent.DecorateOutboundTransformer("x"),
			want: "wscomponent: DecorateOutboundTransformer: got string, want a decorator",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fx.New(fx.NopLogger, tt.give).Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A constructor may return any type assignable to the bound one, and may
// return an error, which fails the app. Module provides the keys, so the
// app may take a binding by name.
func TestProvideConvertsResults(t *testing.T) {
	type unnamedAuth = func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error)
	rdb := unusedRedis(t)
	component := fx.Options(fx.NopLogger, fx.Provide(echo.New), wscomponent.Module(),
		wscomponent.ProvideRedisConnection(func() *redis.Client { return rdb }))
	var got server.AuthenticateFunc
	app := fx.New(component,
		wscomponent.ProvideAuthenticateHandler(func() (unnamedAuth, error) {
			return func(context.Context, server.AuthenticateRequest) (*server.AuthResult, error) {
				return &server.AuthResult{UserID: "u"}, nil
			}, nil
		}),
		fx.Invoke(fx.Annotate(func(h server.AuthenticateFunc) { got = h },
			fx.ParamTags(`name:"`+wscomponent.KeyAuthenticateHandler+`"`))),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	if res, _ := got(context.Background(), server.AuthenticateRequest{}); res == nil || res.UserID != "u" {
		t.Fatalf("bound handler returned %+v", res)
	}

	app = fx.New(component,
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.ProvideServerOptions(func() (wscomponent.ServerOptions, error) {
			return wscomponent.ServerOptions{}, errBadConfig
		}),
	)
	if err := app.Err(); err == nil || !strings.Contains(err.Error(), errBadConfig.Error()) {
		t.Fatalf("error %v, want the constructor's error", err)
	}
}

var errBadConfig = &configError{}

type configError struct{}

func (*configError) Error() string { return "bad config" }
