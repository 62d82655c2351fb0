// Command wsserver is a standalone WebSocket server for load tests: the
// server.Helper wired by internal/benchserver (token authentication, echo,
// server-side fan-out, POST /broadcast, GET /stats), in its own process so
// that its CPU time and memory can be measured from outside (see cmd/wsload).
//
// Usage:
//
//	wsserver [-addr 127.0.0.1:9000] [-redis redis://127.0.0.1:6379/0] [-pprof 127.0.0.1:6060]
//
// Run several on one Redis to test scale-out. SIGINT or SIGTERM stops it
// gracefully (every client gets 1001 "Server shutting down").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ignis-go/wscomponent/helpers/redisconn"
	"github.com/ignis-go/wscomponent/internal/benchserver"
	"github.com/ignis-go/wscomponent/server"
)

// shutdownTimeout bounds the graceful stop.
const shutdownTimeout = 15 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("wsserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address of the WebSocket endpoint and the control routes")
	redisURL := fs.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss://, redis+cluster://, redis+sentinel://); a real Redis is required")
	path := fs.String("path", "/ws", "WebSocket endpoint path")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); empty: off")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	pings := fs.Bool("pings", true, "send protocol pings (server.Config.SendPings)")
	asyncPublish := fs.Bool("async-publish", false, "return from publishes once queued for Redis (server.Config.AsyncPublish)")
	routing := fs.String("routing", "", "Redis routing: interest (default), pattern or sharded (server.Config.RedisRouting; sharded needs a cluster URL)")
	messageRate := fs.Float64("message-rate", 0, "frames per second one client may send (server.Config.MessageRate): 0 the Helper's default, -1 (server.Off) no limit")
	pollers := fs.Int("pollers", 0, "epoll pollers reading connections (server.Config.Pollers): 0 the Helper's default, -1 (server.Off) a reader goroutine per connection")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wsserver [flags]\n\nA server.Helper wired for load tests: token auth, echo, fan-out, POST /broadcast, GET /stats.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	var lvl zapcore.Level
	if err := lvl.Set(*logLevel); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logCfg := zap.NewProductionConfig()
	logCfg.Level = zap.NewAtomicLevelAt(lvl)
	logger, err := logCfg.Build()
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	rdb, err := redisconn.FromURL(*redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	srv, err := benchserver.New(benchserver.Config{
		Redis:  rdb,
		Logger: logger,
		Path:   *path,
		Helper: server.Config{RedisTimeout: 10 * time.Second, SendPings: server.Bool(*pings), MessageRate: *messageRate,
			AsyncPublish: *asyncPublish, RedisRouting: *routing, Pollers: *pollers},
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Configure(ctx); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()

	var ps *http.Server
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", pprofListenAddr(*pprofAddr))
		if err != nil {
			_ = hs.Close()
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("-pprof: %w", err)
		}
		ps = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- ps.Serve(pln) }()
		fmt.Fprintf(os.Stderr, "wsserver: pprof on http://%s/debug/pprof/\n", pln.Addr())
	}
	fmt.Fprintf(os.Stderr, "wsserver: pid %d, ws://%s%s, control http://%s/broadcast and /stats, server id %s\n",
		os.Getpid(), ln.Addr(), *path, ln.Addr(), srv.Helper().ServerID())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stop()
	fmt.Fprintln(os.Stderr, "wsserver: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// The Helper closes the WebSockets (hijacked, so http.Server.Shutdown
	// does not see them); then the HTTP servers stop.
	err = errors.Join(srv.Shutdown(sctx), hs.Shutdown(sctx))
	if ps != nil {
		err = errors.Join(err, ps.Shutdown(sctx))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(serveErr, err)
	}
	return err
}

// pprofListenAddr accepts "6060" or ":6060" as a port on 127.0.0.1.
func pprofListenAddr(a string) string {
	a = strings.TrimPrefix(a, ":")
	if !strings.Contains(a, ":") {
		return net.JoinHostPort("127.0.0.1", a)
	}
	return a
}

// pprofMux serves net/http/pprof on its own mux, apart from the load-test
// routes.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
