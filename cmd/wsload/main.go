// Command wsload is a load generator for WebSocket servers built on this
// module (or speaking its protocol): it connects many authenticated clients
// and measures what users feel (throughput, latency, loss, duplicates,
// order) and, given the server's PID, what the server pays (CPU time per
// delivery or round trip, resident memory per connection).
//
// Scenarios:
//
//	wsload idle   -clients 5000 -rate 0 -hold 30s -pid 1234
//	wsload fanout -clients 1000 -broadcasts 200 -size 100 -pid 1234
//	wsload echo   -clients 100 -rounds 500 -pid 1234
//	wsload fanout -nodes ws://127.0.0.1:9000/ws,ws://127.0.0.1:9001/ws -pid 1234,1235
//	wsload compare DIR
//
// idle connects -clients at -rate per second (0: as fast as -concurrency
// allows), holds them for -hold and reports the connect+auth rate and the
// server's RSS growth per connection. fanout asks the server to send
// -broadcasts messages of -size bytes (POST <control>/broadcast, or a
// "fanout" frame with -trigger ws) and checks that every client got every
// message once, in order. echo has each client do -rounds sequential
// request/reply round trips ("echo" frames). With -nodes the clients are
// spread over several instances and fan-out is triggered on the first, so
// messages reach the others through Redis.
//
// Every simulated user is a client.Client (package client): Dial
// authenticates it, reconnecting is off (a lost connection counts as
// dropped), and its frames are handled on its reader goroutine
// (Options.OnFrame), which keeps wsload's own CPU per delivery close to
// that of a bare WebSocket reader.
//
// The server contract (authentication with {"token": …}, the echo and
// fanout events, POST /broadcast, the bench message data) is the one of
// internal/benchserver, which cmd/wsserver runs; see the README in this
// directory.
//
// -json FILE also writes the run's numbers as JSON. wsload compare reads a
// directory of such files named CASE.SERVER.ROUND.json (as compare.sh in
// this directory writes them, for cmd/wsserver and the Ignis helper under
// Bun) and prints the medians per case and server, the Go/Bun ratios and
// the goals of issue 10.
//
// Targets must be loopback addresses unless -allow-remote is given. Every
// run stops by itself within -timeout. A progress line goes to stderr once
// a second; the summary table goes to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "wsload:", err)
		}
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	scenario    string
	nodes       []*url.URL
	control     *url.URL
	clients     int
	concurrency int
	rate        float64
	auth        authTemplate
	hold        time.Duration
	heartbeat   time.Duration
	broadcasts  int
	size        int
	room        string
	interval    time.Duration
	trigger     string
	rounds      int
	local       bool
	pids        procSet
	timeout     time.Duration
	drain       time.Duration
	policy      policy
	progress    bool
	jsonPath    string
	args        []string
}

var scenarios = []string{"idle", "fanout", "echo"}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	var scenario string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		scenario, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       config
		target    = fs.String("url", "ws://127.0.0.1:9000/ws", "WebSocket URL of the server")
		nodes     = fs.String("nodes", "", "comma-separated WebSocket URLs of several instances on one Redis (overrides -url); clients are spread round-robin, fan-out is triggered on the first")
		control   = fs.String("control", "", "base URL of the control routes (POST /broadcast); default: the first node's host over http")
		token     = fs.String("token", "user-{i}", "token template: client i authenticates with {\"token\":\"<template with {i} and {node} replaced>\"}")
		authData  = fs.String("auth-data", "", "authenticate data as a JSON template with {i} and {node}; overrides -token")
		pids      = fs.String("pid", "", "comma-separated PIDs of the server processes, for CPU time and RSS from /proc")
		scenFlag  = fs.String("scenario", "", "idle, fanout or echo (or give it as the first argument)")
		trigger   = fs.String("trigger", "http", "how fanout asks for messages: http (POST <control>/broadcast) or ws (a \"fanout\" frame from the first client)")
		noProgess = fs.Bool("quiet", false, "no progress line on stderr")
	)
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the run's numbers to this file as JSON (for wsload compare)")
	fs.IntVar(&cfg.clients, "clients", 100, "number of clients")
	fs.IntVar(&cfg.concurrency, "concurrency", 64, "connection attempts in flight")
	fs.Float64Var(&cfg.rate, "rate", 0, "new connections per second (0: as fast as -concurrency allows)")
	fs.DurationVar(&cfg.hold, "hold", 10*time.Second, "idle: how long to hold the connections")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 30*time.Second, "idle: interval of application heartbeats while holding (0: none)")
	fs.IntVar(&cfg.broadcasts, "broadcasts", 200, "fanout: number of messages")
	fs.IntVar(&cfg.size, "size", 100, "fanout and echo: bytes of data per message")
	fs.StringVar(&cfg.room, "room", "", "fanout: send to this room instead of everybody (every client is in ws-default)")
	fs.DurationVar(&cfg.interval, "interval", 0, "fanout: pause between two messages on the server (0: back to back)")
	fs.BoolVar(&cfg.local, "local", false, "fanout: the server sends to its own clients only, publishing nothing on Redis (Broadcast instead of PublishBroadcast)")
	fs.IntVar(&cfg.rounds, "rounds", 500, "echo: sequential round trips per client")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "the whole run stops after this")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "fanout: give up waiting for missing messages after this long without a new one")
	fs.BoolVar(&cfg.policy.allowRemote, "allow-remote", false, "allow targets outside 127.0.0.0/8 and ::1 (only your own deployment)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: wsload {%s} [flags]\n       wsload compare DIR\n\nFlags:\n", strings.Join(scenarios, "|"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *scenFlag != "" {
		if scenario != "" && scenario != *scenFlag {
			return nil, fmt.Errorf("scenario given twice: %q and -scenario %q", scenario, *scenFlag)
		}
		scenario = *scenFlag
	}
	switch scenario {
	case "idle", "fanout", "echo":
	case "":
		fs.Usage()
		return nil, errors.New("no scenario")
	default:
		return nil, fmt.Errorf("unknown scenario %q; want one of %s", scenario, strings.Join(scenarios, ", "))
	}
	cfg.scenario = scenario
	cfg.progress = !*noProgess
	cfg.args = append([]string{scenario}, args...)

	list := []string{*target}
	if *nodes != "" {
		list = strings.Split(*nodes, ",")
	}
	for _, s := range list {
		u, err := parseWSURL(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		cfg.nodes = append(cfg.nodes, u)
	}
	cfg.control = controlURL(cfg.nodes[0])
	if *control != "" {
		u, err := url.Parse(*control)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("-control %q: want an http(s) URL", *control)
		}
		cfg.control = u
	}
	if *trigger != "http" && *trigger != "ws" {
		return nil, fmt.Errorf("-trigger %q: want http or ws", *trigger)
	}
	cfg.trigger = *trigger

	var err error
	if cfg.auth, err = newAuthTemplate(*token, *authData); err != nil {
		return nil, err
	}
	if *pids != "" {
		for _, p := range strings.Split(*pids, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("-pid: %q is not a PID", p)
			}
			if _, err := sampleProc(pid); err != nil {
				return nil, fmt.Errorf("-pid %d: %w", pid, err)
			}
			cfg.pids.pids = append(cfg.pids.pids, pid)
		}
	}
	switch {
	case cfg.clients < 1:
		return nil, errors.New("-clients must be at least 1")
	case cfg.concurrency < 1:
		return nil, errors.New("-concurrency must be at least 1")
	case cfg.rate < 0:
		return nil, errors.New("-rate must not be negative")
	case cfg.broadcasts < 1:
		return nil, errors.New("-broadcasts must be at least 1")
	case cfg.size < 0:
		return nil, errors.New("-size must not be negative")
	case cfg.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	case cfg.drain <= 0:
		return nil, errors.New("-drain must be positive")
	}
	return &cfg, nil
}

// run parses args, checks the targets against the loopback policy and runs
// the scenario within the timeout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	for _, u := range cfg.nodes {
		if err := cfg.policy.checkURL(ctx, u); err != nil {
			return err
		}
	}
	if cfg.scenario == "fanout" && cfg.trigger == "http" {
		if err := cfg.policy.checkURL(ctx, cfg.control); err != nil {
			return err
		}
	}
	r := newRunner(cfg, stderr)
	var rep *report
	switch cfg.scenario {
	case "idle":
		rep, err = r.idle(ctx)
	case "fanout":
		rep, err = r.fanout(ctx)
	case "echo":
		rep, err = r.echo(ctx)
	}
	if rep != nil {
		rep.print(stdout)
		if cfg.jsonPath != "" {
			if werr := writeResult(cfg.jsonPath, newResult(cfg, rep, err)); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}
