// Package js_test runs the JavaScript client (wscomponent.js) against real
// servers: Node scripts under testdata/ and a page in headless Chromium,
// each against a server.Helper on a real redis-server, over real sockets.
//
// A test server can be restarted on the same address (Shutdown the Helper,
// close the listener, listen again with a fresh Helper) and its Redis can be
// killed and brought back, which is how the reconnect tests hurt it. Scripts
// ask for that, and for server-side actions, through a control server on
// another port that lives for the whole test.
package js_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	js "github.com/ignis-go/wscomponent/clients/js"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	// waitTimeout bounds one server-side wait (Configure, Shutdown, a
	// publish).
	waitTimeout = 10 * time.Second
	// Server timings the scripts rely on: a client that sends no heartbeat
	// is closed within about a second, sessions warn a second before they
	// expire.
	heartbeatInterval = 100 * time.Millisecond
	heartbeatTimeout  = 800 * time.Millisecond
	refreshWindow     = time.Second
)

// serverMode selects the server a test runs against.
type serverMode struct {
	// encrypted applies an encryption.Pair (RequireEncryption).
	encrypted bool
	// edit, when set, changes the options of every Helper the server
	// starts (e.g. history rooms).
	edit func(*server.Options)
	// second starts another instance on the same Redis that restarts do
	// not touch; POST /publish-second publishes through it.
	second bool
}

// testServer is a restartable server: one address, one Redis, one page mux,
// and a Helper that is replaced by every restart.
type testServer struct {
	t     testing.TB
	mode  serverMode
	redis *redistest.Server
	rdb   *redis.Client // shared by every Helper of the test
	pair  *encryption.Pair
	addr  string // host:port, the same across restarts
	mux   *http.ServeMux
	ctl   *httptest.Server
	other *server.Helper // the second instance, if any

	// current is the Helper serving /ws, nil while the server is down.
	current atomic.Pointer[server.Helper]

	mu   sync.Mutex // guards h, http, done; held across a whole restart
	h    *server.Helper
	http *http.Server
	done chan struct{} // closed when http.Serve has returned
}

// startServer starts a server for mode on a free port with its own Redis
// and a control server; both stop when the test ends.
func startServer(t testing.TB, mode serverMode) *testServer {
	t.Helper()
	ts := &testServer{t: t, mode: mode, redis: redistest.Start(t), mux: http.NewServeMux()}
	ts.rdb = ts.redis.Client(t)
	if mode.encrypted {
		p, err := encryption.New(encryption.Options{})
		if err != nil {
			t.Fatalf("encryption.New: %v", err)
		}
		ts.pair = p
	}
	ts.mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		h := ts.current.Load()
		if h == nil {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
	ts.mux.Handle("GET /"+js.FileName, js.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	if err := ts.up(ln); err != nil {
		t.Fatal(err)
	}
	if mode.second {
		h, err := server.New(ts.options())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Configure(ctx); err != nil {
			t.Fatal(err)
		}
		ts.other = h
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := h.Shutdown(ctx); err != nil {
				t.Errorf("second instance: %v", err)
			}
		})
	}
	ts.ctl = httptest.NewServer(ts.control())
	t.Cleanup(func() {
		ts.ctl.Close()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if err := ts.down(); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return ts
}

func (ts *testServer) wsURL() string   { return "ws://" + ts.addr + "/ws" }
func (ts *testServer) pageURL() string { return "http://" + ts.addr }

func (ts *testServer) helper() *server.Helper {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.h
}

// options are the server's callbacks; see testdata/README.md for what the
// scripts may send.
func (ts *testServer) options() server.Options {
	opts := server.Options{
		Config: server.Config{
			HeartbeatInterval: heartbeatInterval,
			HeartbeatTimeout:  heartbeatTimeout,
			RefreshWindow:     refreshWindow,
			PresenceRooms:     func(room string) bool { return strings.HasPrefix(room, "p-") },
			PresenceEvents:    true,
		},
		Redis:        ts.rdb,
		Authenticate: authenticate,
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) {
			var ok []string
			for _, r := range req.Rooms {
				if !strings.HasPrefix(r, "no-") {
					ok = append(ok, r)
				}
			}
			return ok, nil
		},
		Message: onMessage,
	}
	if ts.pair != nil {
		ts.pair.Apply(&opts)
	}
	if ts.mode.edit != nil {
		ts.mode.edit(&opts)
	}
	return opts
}

// authenticate accepts {"token":"user:<id>"} and {"token":"user:<id>:<ttl>"}
// (a session that expires after the Go duration ttl); anything else is
// refused.
func authenticate(_ context.Context, req server.AuthenticateRequest) (*server.AuthResult, error) {
	var d struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(req.Data, &d)
	rest, ok := strings.CutPrefix(d.Token, "user:")
	if !ok || rest == "" {
		return nil, nil
	}
	id, ttl, hasTTL := strings.Cut(rest, ":")
	res := &server.AuthResult{UserID: id}
	if hasTTL {
		dur, err := time.ParseDuration(ttl)
		if err != nil {
			return nil, nil
		}
		res.ExpiresAt = time.Now().Add(dur)
	}
	return res, nil
}

// onMessage answers the scripts' requests: "echo" replies with its data,
// "fail" with a ClientError, "boom" with an internal error, "silent" not at
// all, and "say" {room, text} publishes "said" to the room.
func onMessage(ctx context.Context, ev server.MessageEvent) error {
	h := server.FromContext(ctx)
	switch ev.Message.Event {
	case "echo":
		return h.Reply(ctx, ev, "echo", ev.Message.Data)
	case "fail":
		return server.ClientError{Message: "no such thing"}
	case "boom":
		return errors.New("database on fire")
	case "say":
		var d struct {
			Room string `json:"room"`
		}
		if err := json.Unmarshal(ev.Message.Data, &d); err != nil || d.Room == "" {
			return server.ClientError{Message: "say needs a room"}
		}
		return h.PublishToRoom(ctx, d.Room, "said", ev.Message.Data)
	}
	return nil
}

// up starts a fresh Helper and serves it on ln. Called with mu held (or
// before the server is shared).
func (ts *testServer) up(ln net.Listener) error {
	h, err := server.New(ts.options())
	if err != nil {
		return fmt.Errorf("server.New: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.Configure(ctx); err != nil {
		_ = h.Shutdown(ctx)
		return fmt.Errorf("Configure: %w", err)
	}
	srv := &http.Server{Handler: ts.mux, ReadHeaderTimeout: waitTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // ErrServerClosed after down
	}()
	ts.h, ts.http, ts.done = h, srv, done
	ts.current.Store(h)
	return nil
}

// down shuts the Helper down (every client gets 1001) and closes the
// listener. Called with mu held.
func (ts *testServer) down() error {
	if ts.h == nil {
		return nil
	}
	ts.current.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := ts.h.Shutdown(ctx)
	if e := ts.http.Shutdown(ctx); e != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", e)
	}
	<-ts.done
	ts.h, ts.http, ts.done = nil, nil, nil
	return err
}

// restart takes the server down, keeps the port closed for downFor (clients
// that reconnect meanwhile are refused), and brings a fresh Helper up on the
// same address.
func (ts *testServer) restart(downFor time.Duration) error {
	return ts.restartWith(func() error {
		time.Sleep(downFor) // the outage the clients must ride out, not a wait for an event
		return nil
	})
}

// restartWith is restart with whileDown as the outage: it runs after every
// client of the old Helper has been closed and before the port is open
// again, so nothing it publishes can reach them live. It must not call
// ts.helper (the server's lock is held); ts.other is up.
func (ts *testServer) restartWith(whileDown func() error) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.down(); err != nil {
		return err
	}
	if err := whileDown(); err != nil {
		return fmt.Errorf("while the server was down: %w", err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		ln, err := net.Listen("tcp", ts.addr)
		if err == nil {
			return ts.up(ln)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("listen again on %s: %w", ts.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the port is briefly busy; retry until the deadline
	}
}

// control serves the scripts' requests for server-side actions and state.
// Every answer is JSON; a failure is a 500 with {"error"}.
func (ts *testServer) control() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			v = map[string]string{"error": err.Error()}
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /restart", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("downMs"))
		reply(w, map[string]bool{"ok": true}, ts.restart(time.Duration(ms)*time.Millisecond))
	})
	mux.HandleFunc("POST /redis/kill", func(w http.ResponseWriter, _ *http.Request) {
		ts.redis.Kill()
		reply(w, map[string]bool{"ok": true}, nil)
	})
	mux.HandleFunc("POST /redis/restart", func(w http.ResponseWriter, _ *http.Request) {
		ts.redis.Restart(ts.t)
		// Ready means the Helper has its subscription back.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		var err error
		for {
			if err = ts.helper().Health(ctx); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // polling Health until the deadline
		}
		reply(w, map[string]bool{"ok": true}, err)
	})
	publish := func(h func() *server.Helper) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var data json.RawMessage
			if err := json.NewDecoder(r.Body).Decode(&data); err != nil {
				reply(w, nil, err)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), waitTimeout)
			defer cancel()
			q := r.URL.Query()
			reply(w, map[string]bool{"ok": true}, h().PublishToRoom(ctx, q.Get("room"), q.Get("event"), data))
		}
	}
	mux.HandleFunc("POST /publish", publish(ts.helper))
	if ts.other != nil {
		mux.HandleFunc("POST /publish-second", publish(func() *server.Helper { return ts.other }))
	}
	mux.HandleFunc("POST /disconnect", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		code, _ := strconv.Atoi(q.Get("code"))
		ctx, cancel := context.WithTimeout(r.Context(), waitTimeout)
		defer cancel()
		err := ts.helper().DisconnectUser(ctx, q.Get("user"), server.Disconnect{Code: code, Reason: q.Get("reason")})
		reply(w, map[string]bool{"ok": true}, err)
	})
	mux.HandleFunc("GET /client", func(w http.ResponseWriter, r *http.Request) {
		info, ok := ts.helper().Client(r.URL.Query().Get("id"))
		if !ok {
			reply(w, map[string]any{"found": false}, nil)
			return
		}
		reply(w, map[string]any{"found": true, "userId": info.UserID, "rooms": info.Rooms, "encrypted": info.Encrypted}, nil)
	})
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) {
		var pin string
		if ts.pair != nil {
			pin = ts.pair.ServerPublicKey()
		}
		reply(w, map[string]any{"ws": ts.wsURL(), "serverPublicKey": pin}, nil)
	})
	return mux
}

// env is what every script gets: where the server and its control live.
func (ts *testServer) env() []string {
	env := []string{"WS_URL=" + ts.wsURL(), "CTL_URL=" + ts.ctl.URL}
	if ts.pair != nil {
		env = append(env, "SERVER_PUBLIC_KEY="+ts.pair.ServerPublicKey())
	}
	return env
}

// requireFile fails the test when path (a tool the test needs) is missing,
// with how to install it: these tests must not be skipped.
func requireFile(t testing.TB, path, install string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): install it with: %s", path, err, install)
	}
}
