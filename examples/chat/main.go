// Command chat is a complete chat application built on the wscomponent fx
// module: an Echo server that serves a browser page, a demo login, rooms,
// an HTTP endpoint that sends from server code, and graceful shutdown.
//
// Run it with
//
//	go run ./examples/chat
//
// and open the URL it logs in two browser tabs. Without REDIS_URL it runs on
// an embedded in-process Redis; with REDIS_URL, every instance on that Redis
// serves the same rooms. With -encrypt, every client must complete the ECDH
// handshake of server/encryption, and the frames between the page and the
// server are encrypted (the page uses the browser client of that package).
//
// Configuration, by flag or environment variable (the flag wins):
//
//	-addr          ADDR          listen address (127.0.0.1:8080)
//	-redis-url     REDIS_URL     Redis URL, see helpers/redisconn (embedded Redis)
//	-token-secret  TOKEN_SECRET  HMAC key of the demo tokens (random per process)
//	-token-ttl     TOKEN_TTL     lifetime of a demo token (12h)
//	-production    PRODUCTION    JSON logs at info level (false: development logs)
//	-encrypt       ENCRYPT       require encrypted frames (false)
//
// Instances that should accept each other's tokens need the same
// TOKEN_SECRET. Prefer the environment for it: flags show up in ps.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// Defaults of the configuration.
const (
	defaultAddr     = "127.0.0.1:8080"
	defaultTokenTTL = 12 * time.Hour
	// minSecretLength keeps a configured TOKEN_SECRET from being guessable.
	minSecretLength = 16
)

// Lifecycle bounds. Start allows for the component's Redis timeout
// (10 s, below); stop allows for closing every socket and draining HTTP.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 15 * time.Second
)

// config is the whole configuration of the app.
type config struct {
	// Addr is the listen address; port 0 picks a free port.
	Addr string
	// RedisURL names the fleet's Redis; empty runs an embedded one.
	RedisURL string
	// TokenSecret signs the demo tokens; empty: a random secret per process.
	TokenSecret []byte
	// TokenTTL is the lifetime of a demo token.
	TokenTTL time.Duration
	// Production selects JSON logs at info level.
	Production bool
	// Encrypt requires every client to complete the encryption handshake;
	// frames to and from it are then encrypted.
	Encrypt bool
}

// parseConfig reads flags from args, falling back to getenv, then to the
// defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	defTTL := defaultTokenTTL
	if v := getenv("TOKEN_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return config{}, fmt.Errorf("TOKEN_TTL: %w", err)
		}
		defTTL = d
	}
	envBool := func(key string) (bool, error) {
		v := getenv(key)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s: %w", key, err)
		}
		return b, nil
	}
	defProd, err := envBool("PRODUCTION")
	if err != nil {
		return config{}, err
	}
	defEncrypt, err := envBool("ENCRYPT")
	if err != nil {
		return config{}, err
	}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	addr := fs.String("addr", env("ADDR", defaultAddr), "listen address (env ADDR)")
	redisURL := fs.String("redis-url", "", "Redis URL; empty runs an embedded Redis (env REDIS_URL)")
	secret := fs.String("token-secret", "", "HMAC key for demo tokens; empty: random per process (env TOKEN_SECRET, preferred)")
	ttl := fs.Duration("token-ttl", defTTL, "lifetime of a demo token (env TOKEN_TTL)")
	prod := fs.Bool("production", defProd, "JSON logs at info level (env PRODUCTION)")
	encrypt := fs.Bool("encrypt", defEncrypt, "require encrypted frames: ECDH P-256 handshake, AES-256-GCM (env ENCRYPT)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	// These two are not flag defaults, so that -h does not print a secret
	// or a Redis password.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["redis-url"] {
		*redisURL = getenv("REDIS_URL")
	}
	if !set["token-secret"] {
		*secret = getenv("TOKEN_SECRET")
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *ttl <= 0 {
		return config{}, errors.New("token TTL must be positive")
	}
	if *secret != "" && len(*secret) < minSecretLength {
		return config{}, fmt.Errorf("TOKEN_SECRET must be at least %d bytes", minSecretLength)
	}
	return config{
		Addr:        *addr,
		RedisURL:    *redisURL,
		TokenSecret: []byte(*secret),
		TokenTTL:    *ttl,
		Production:  *prod,
		Encrypt:     *encrypt,
	}, nil
}

// newMetrics is the app's own Prometheus registry (served on /metrics):
// the Go runtime and process collectors, and, because the registry is also
// provided as the prometheus.Registerer, the component's metrics.
func newMetrics() (*prometheus.Registry, prometheus.Registerer) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, reg
}

// appOptions is the whole app. Tests build it with fxtest; main with fx.New.
func appOptions(cfg config) fx.Option {
	return fx.Options(
		fx.Supply(cfg),
		fx.Provide(
			newLogger,
			newWebServer,
			newTokenIssuer,
			newChat,
			newMetrics,
		),
		fx.WithLogger(func(log *zap.Logger) fxevent.Logger {
			// fx's wiring report is noise even at debug: keep its errors only.
			l := &fxevent.ZapLogger{Logger: log.Named("fx").WithOptions(zap.IncreaseLevel(zapcore.InfoLevel))}
			l.UseLogLevel(zapcore.DebugLevel)
			return l
		}),

		// The component, and what it needs from the app.
		wscomponent.Module(),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{
			Path:              "/ws",
			RedisTimeout:      10 * time.Second,
			RequireEncryption: cfg.Encrypt,
		}),
		wscomponent.ProvideRedisConnection(newRedis),
		wscomponent.ProvideAuthenticateHandler(func(c *chat) server.AuthenticateFunc { return c.authenticate }),
		wscomponent.ProvideValidateRoomHandler(func(c *chat) server.ValidateRoomFunc { return c.validateRoom }),
		wscomponent.ProvideMessageHandler(func(c *chat) server.MessageHandler { return c.onMessage }),
		wscomponent.ProvideClientConnectedHandler(func(c *chat) server.ClientConnectedFunc { return c.clientConnected }),
		wscomponent.ProvideClientDisconnectedHandler(func(c *chat) server.ClientDisconnectedFunc { return c.clientDisconnected }),
		encryptionOption(cfg),

		fx.Invoke(
			(*chat).attach,
			registerRoutes,
			announce, // last: its hook runs once everything else has started
		),
		fx.StartTimeout(startTimeout),
		fx.StopTimeout(stopTimeout),
	)
}

// encryptionOption binds the ready-made encryption pair when cfg.Encrypt is
// set: its handshake (the client's "publicKey" in the authenticate payload),
// its transformers (every frame to the client is sealed; "encrypted" frames
// from it are opened and routed like plaintext ones) and the clean-up of
// each client's key on disconnect. RequireEncryption, in the server options
// above, makes the handshake mandatory: a client without a valid key is
// closed with 4004.
func encryptionOption(cfg config) fx.Option {
	if !cfg.Encrypt {
		return fx.Options()
	}
	return wscomponent.ProvideEncryption(func(log *zap.Logger) (*encryption.Pair, error) {
		// A new server key at every start is fine here: the page does not
		// pin it. Instances behind one load balancer need not share it
		// either, since each connection derives its own key.
		return encryption.New(encryption.Options{Logger: log})
	})
}

// newApp builds the app for main.
func newApp(cfg config) *fx.App { return fx.New(appOptions(cfg)) }

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(2)
	}
	// Run starts the app, waits for SIGINT or SIGTERM and stops it within
	// stopTimeout: the component closes every socket with 1001, then Echo
	// drains the HTTP requests in flight.
	newApp(cfg).Run()
}

// newLogger builds the app's logger and flushes it on stop.
func newLogger(lc fx.Lifecycle, cfg config) (*zap.Logger, error) {
	var log *zap.Logger
	var err error
	if cfg.Production {
		log, err = zap.NewProduction()
	} else {
		// Stack traces on errors only: the warnings here are expected.
		log, err = zap.NewDevelopment(zap.AddStacktrace(zapcore.ErrorLevel))
	}
	if err != nil {
		return nil, err
	}
	// Sync fails on terminals (ENOTTY); nothing to do about it.
	lc.Append(fx.StopHook(func() { _ = log.Sync() }))
	return log, nil
}

// newTokenIssuer uses TOKEN_SECRET, or a random secret when there is none.
func newTokenIssuer(cfg config, log *zap.Logger) (*tokens, error) {
	secret := cfg.TokenSecret
	if len(secret) == 0 {
		var err error
		if secret, err = randomSecret(); err != nil {
			return nil, fmt.Errorf("token secret: %w", err)
		}
		log.Warn("TOKEN_SECRET not set: using a random secret for this process; " +
			"tokens end with it and other instances will not accept them")
	}
	return newTokens(secret, cfg.TokenTTL), nil
}

// webServer runs Echo on cfg.Addr between OnStart and OnStop.
type webServer struct {
	mu    sync.Mutex
	bound net.Addr
}

// HTTP server limits; the WebSocket connections set their own.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// newWebServer provides the Echo instance the component registers its
// route on. Its hooks are appended here, before the component's (which
// needs Echo), so Echo listens before the helper is configured — /ws and
// /readyz answer 503 for that moment — and stops after the helper has
// closed every socket.
func newWebServer(lc fx.Lifecycle, sd fx.Shutdowner, cfg config, log *zap.Logger) (*webServer, *echo.Echo) {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(middleware.Recover())
	e.Server.ReadHeaderTimeout = readHeaderTimeout
	e.Server.IdleTimeout = idleTimeout
	e.Server.ErrorLog = zap.NewStdLog(log.Named("http"))

	s := &webServer{}
	served := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			s.mu.Lock()
			s.bound = ln.Addr()
			s.mu.Unlock()
			go func() {
				defer close(served)
				if err := e.Server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					log.Error("http server failed", zap.Error(err))
					_ = sd.Shutdown(fx.ExitCode(1))
				}
			}()
			log.Debug("http server listening", zap.String("addr", s.Addr()))
			return nil
		},
		OnStop: func(ctx context.Context) error {
			err := e.Shutdown(ctx)
			select {
			case <-served:
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			}
			return err
		},
	})
	return s, e
}

// announce logs the URL to open once the app has started.
func announce(lc fx.Lifecycle, s *webServer, cfg config, log *zap.Logger) {
	lc.Append(fx.StartHook(func() {
		log.Info("chat example ready: open "+s.URL()+" in two browser tabs", zap.Bool("encrypted", cfg.Encrypt))
	}))
}

// Addr is the address the server listens on ("" before it started). With
// port 0 in the configuration, it holds the port actually bound.
func (s *webServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound == nil {
		return ""
	}
	return s.bound.String()
}

// URL is the page's address for a browser on this machine.
func (s *webServer) URL() string {
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return "http://" + s.Addr() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
