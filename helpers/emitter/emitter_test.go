package emitter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// subscribe subscribes c to the channels and returns once Redis has
// confirmed every subscription, so nothing published afterwards is missed.
func subscribe(tb testing.TB, ctx context.Context, c redis.UniversalClient, channels ...string) *redis.PubSub {
	tb.Helper()
	sub := c.Subscribe(ctx)
	tb.Cleanup(func() { _ = sub.Close() })
	if err := sub.Subscribe(ctx, channels...); err != nil {
		tb.Fatalf("subscribe %v: %v", channels, err)
	}
	for range channels {
		msg, err := sub.Receive(ctx)
		if err != nil {
			tb.Fatalf("subscribe %v: %v", channels, err)
		}
		if _, ok := msg.(*redis.Subscription); !ok {
			tb.Fatalf("subscribe %v: got %T, want *redis.Subscription", channels, msg)
		}
	}
	return sub
}

// next returns the next message on sub, failing tb after a deadline.
func next(tb testing.TB, sub *redis.PubSub) *redis.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		tb.Fatalf("no message: %v", err)
	}
	return msg
}

func newEmitter(tb testing.TB, rdb redis.UniversalClient) *Emitter {
	tb.Helper()
	e, err := New(Options{Redis: rdb})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

type chatMessage struct {
	Text string `json:"text"`
	From string `json:"from,omitempty"`
}

func TestEnvelopes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	e := newEmitter(t, s.Client(t))
	subClient := s.Client(t)

	tests := []struct {
		name        string
		give        func(*Emitter) error
		wantChannel string
		want        string
	}{
		{
			name:        "to client",
			give:        func(e *Emitter) error { return e.ToClient(ctx, "c-1", "message", chatMessage{Text: "hi"}) },
			wantChannel: "ws:client:c-1",
			want:        `{"serverId":"emitter","type":"client","target":"c-1","event":"message","data":{"text":"hi"}}`,
		},
		{
			name:        "to user",
			give:        func(e *Emitter) error { return e.ToUser(ctx, "u-42", "notify", []int{1, 2}) },
			wantChannel: "ws:user:u-42",
			want:        `{"serverId":"emitter","type":"user","target":"u-42","event":"notify","data":[1,2]}`,
		},
		{
			name:        "to room",
			give:        func(e *Emitter) error { return e.ToRoom(ctx, "lobby", "chat", "hello") },
			wantChannel: "ws:room:lobby",
			want:        `{"serverId":"emitter","type":"room","target":"lobby","event":"chat","data":"hello"}`,
		},
		{
			name: "to room with exclude",
			give: func(e *Emitter) error {
				return e.ToRoom(ctx, "lobby", "chat", map[string]any{"n": 1}, "c-1", "c-2")
			},
			wantChannel: "ws:room:lobby",
			want:        `{"serverId":"emitter","type":"room","target":"lobby","event":"chat","data":{"n":1},"exclude":["c-1","c-2"]}`,
		},
		{
			name:        "to room with an empty exclude list",
			give:        func(e *Emitter) error { return e.ToRoom(ctx, "lobby", "chat", 1, []string{}...) },
			wantChannel: "ws:room:lobby",
			want:        `{"serverId":"emitter","type":"room","target":"lobby","event":"chat","data":1}`,
		},
		{
			name:        "broadcast",
			give:        func(e *Emitter) error { return e.Broadcast(ctx, "news", nil) },
			wantChannel: "ws:broadcast",
			want:        `{"serverId":"emitter","type":"broadcast","event":"news","data":null}`,
		},
		{
			name:        "broadcast with exclude",
			give:        func(e *Emitter) error { return e.Broadcast(ctx, "news", true, "c-9") },
			wantChannel: "ws:broadcast",
			want:        `{"serverId":"emitter","type":"broadcast","event":"news","data":true,"exclude":["c-9"]}`,
		},
		{
			name:        "raw json data is embedded as is",
			give:        func(e *Emitter) error { return e.ToClient(ctx, "c-1", "raw", json.RawMessage(`{"a":[1,"x"]}`)) },
			wantChannel: "ws:client:c-1",
			want:        `{"serverId":"emitter","type":"client","target":"c-1","event":"raw","data":{"a":[1,"x"]}}`,
		},
		{
			name:        "room names are not escaped",
			give:        func(e *Emitter) error { return e.ToRoom(ctx, "team:42/ünï", "chat", "x") },
			wantChannel: "ws:room:team:42/ünï",
			want:        `{"serverId":"emitter","type":"room","target":"team:42/ünï","event":"chat","data":"x"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := subscribe(t, ctx, subClient, tt.wantChannel)
			if err := tt.give(e); err != nil {
				t.Fatalf("send: %v", err)
			}
			msg := next(t, sub)
			if msg.Channel != tt.wantChannel {
				t.Errorf("channel = %q, want %q", msg.Channel, tt.wantChannel)
			}
			if msg.Payload != tt.want {
				t.Errorf("payload\n got %s\nwant %s", msg.Payload, tt.want)
			}
			// What a server decodes must route back to the same channel.
			var env protocol.Envelope
			if err := json.Unmarshal([]byte(msg.Payload), &env); err != nil {
				t.Fatalf("decode envelope: %v", err)
			}
			if !env.Type.Valid() || protocol.ChannelFor(env.Type, env.Target) != tt.wantChannel {
				t.Errorf("envelope %+v routes to %q, want %q", env, protocol.ChannelFor(env.Type, env.Target), tt.wantChannel)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	e := newEmitter(t, s.Client(t))
	// Watch every channel of the protocol: a refused send must publish nothing.
	watch := s.Client(t).PSubscribe(ctx, protocol.InternalPrefix+"*")
	t.Cleanup(func() { _ = watch.Close() })
	if _, err := watch.Receive(ctx); err != nil {
		t.Fatalf("psubscribe: %v", err)
	}

	tests := []struct {
		name    string
		give    func() error
		wantIs  error // checked with errors.Is
		wantAs  any   // pointer to an error type, checked with errors.As
		wantSub string
	}{
		{name: "empty client id", give: func() error { return e.ToClient(ctx, "", "ev", 1) }, wantIs: ErrEmptyTarget, wantSub: "client id"},
		{name: "empty user id", give: func() error { return e.ToUser(ctx, "", "ev", 1) }, wantIs: ErrEmptyTarget, wantSub: "user id"},
		{name: "empty room", give: func() error { return e.ToRoom(ctx, "", "ev", 1) }, wantIs: ErrEmptyTarget, wantSub: "room"},
		{name: "empty event to client", give: func() error { return e.ToClient(ctx, "c", "", 1) }, wantIs: ErrEmptyEvent},
		{name: "empty event to user", give: func() error { return e.ToUser(ctx, "u", "", 1) }, wantIs: ErrEmptyEvent},
		{name: "empty event to room", give: func() error { return e.ToRoom(ctx, "r", "", 1) }, wantIs: ErrEmptyEvent},
		{name: "empty event broadcast", give: func() error { return e.Broadcast(ctx, "", 1) }, wantIs: ErrEmptyEvent},
		{
			name:    "unencodable data",
			give:    func() error { return e.ToRoom(ctx, "r", "ev", make(chan int)) },
			wantAs:  new(*json.UnsupportedTypeError),
			wantSub: `encode data of "ev"`,
		},
		{
			name:    "unencodable value",
			give:    func() error { return e.Broadcast(ctx, "ev", math.Inf(1)) },
			wantAs:  new(*json.UnsupportedValueError),
			wantSub: `encode data of "ev"`,
		},
		{
			name:    "invalid raw json",
			give:    func() error { return e.ToUser(ctx, "u", "ev", json.RawMessage(`{nope`)) },
			wantSub: `encode data of "ev"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give()
			if err == nil {
				t.Fatal("send succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "emitter: ") {
				t.Errorf("error %q lacks the emitter: prefix", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("error %q does not wrap %T", err, tt.wantAs)
			}
			if tt.wantSub != "" && !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q does not contain %q", err, tt.wantSub)
			}
		})
	}

	// Messages arrive in publish order, so if the marker comes first,
	// nothing was published by the refused sends above.
	if err := e.Broadcast(ctx, "marker", nil); err != nil {
		t.Fatalf("marker: %v", err)
	}
	msg := next(t, watch)
	if !strings.Contains(msg.Payload, `"event":"marker"`) {
		t.Fatalf("first message after refused sends is %s on %s, want the marker", msg.Payload, msg.Channel)
	}
}

func TestNewRequiresRedis(t *testing.T) {
	e, err := New(Options{})
	if !errors.Is(err, ErrNoRedis) || e != nil {
		t.Fatalf("New(Options{}) = %v, %v; want nil, ErrNoRedis", e, err)
	}
}

func TestCloseLeavesGivenClientOpen(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	rdb := s.Client(t)
	e, err := New(Options{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	sends := map[string]func() error{
		"ToClient":  func() error { return e.ToClient(ctx, "c", "ev", 1) },
		"ToUser":    func() error { return e.ToUser(ctx, "u", "ev", 1) },
		"ToRoom":    func() error { return e.ToRoom(ctx, "r", "ev", 1) },
		"Broadcast": func() error { return e.Broadcast(ctx, "ev", 1) },
	}
	for name, send := range sends {
		if err := send(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's client was closed by Emitter.Close: %v", err)
	}
}

func TestNewFromURL(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	sub := subscribe(t, ctx, s.Client(t), protocol.ChannelUser("u-1"))

	e, err := NewFromURL(s.URL(), nil)
	if err != nil {
		t.Fatalf("NewFromURL: %v", err)
	}
	if err := e.ToUser(ctx, "u-1", "hello", "world"); err != nil {
		t.Fatalf("ToUser: %v", err)
	}
	if got, want := next(t, sub).Payload, `{"serverId":"emitter","type":"user","target":"u-1","event":"hello","data":"world"}`; got != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.rdb.Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("owned client after Close: PING = %v, want redis.ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewFromURLErrors(t *testing.T) {
	tests := []struct {
		give    string
		wantSub string
	}{
		{give: "nonsense", wantSub: "emitter: redisconn: "},
		{give: "redis+sentinel://127.0.0.1:26379", wantSub: "master name"},
		{give: "redis://h:1/0?unknown=1", wantSub: "unexpected option"},
	}
	for _, tt := range tests {
		e, err := NewFromURL(tt.give, nil)
		if err == nil {
			_ = e.Close()
			t.Errorf("NewFromURL(%q) succeeded, want an error", tt.give)
			continue
		}
		if !strings.HasPrefix(err.Error(), "emitter: ") || !strings.Contains(err.Error(), tt.wantSub) {
			t.Errorf("NewFromURL(%q) error %q, want prefix emitter: and %q", tt.give, err, tt.wantSub)
		}
	}
}

func TestPublishErrorIsReturned(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEmitter(t, rdb)

	s.Kill()
	err := e.ToRoom(ctx, "lobby", "chat", "x")
	if err == nil {
		t.Fatal("ToRoom with Redis down succeeded")
	}
	if want := `emitter: publish "chat" to ws:room:lobby: `; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want prefix %q", err, want)
	}

	// The emitter recovers once Redis is back.
	s.Restart(t)
	sub := subscribe(t, ctx, s.Client(t), protocol.ChannelBroadcast)
	if err := e.Broadcast(ctx, "back", nil); err != nil {
		t.Fatalf("Broadcast after restart: %v", err)
	}
	next(t, sub)
}

func TestContextIsHonoured(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	e := newEmitter(t, s.Client(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Broadcast(ctx, "ev", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Broadcast with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestConcurrentSendsAndClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	e, err := NewFromURL(s.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}

	const senders = 16
	var (
		wg      sync.WaitGroup
		started = make(chan struct{}, senders)
		errs    = make(chan error, senders)
	)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			for j := 0; ; j++ {
				err := e.ToRoom(ctx, "r", "ev", fmt.Sprint(i, j))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					// Close must wait for sends under way, so an owned client
					// is never closed under a send.
					errs <- err
					return
				}
			}
		}()
	}
	for range senders {
		<-started
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("send during Close: %v", err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cl := redistest.StartCluster(t, 3)
	e, err := NewFromURL(cl.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	// A subscriber on any node sees what is published through any other.
	for _, n := range cl.Nodes() {
		sub := subscribe(t, ctx, n.Client(t), protocol.ChannelRoom("lobby"))
		if err := e.ToRoom(ctx, "lobby", "chat", "hi"); err != nil {
			t.Fatalf("ToRoom: %v", err)
		}
		if got, want := next(t, sub).Payload, `{"serverId":"emitter","type":"room","target":"lobby","event":"chat","data":"hi"}`; got != want {
			t.Fatalf("payload on %s\n got %s\nwant %s", n.Addr(), got, want)
		}
	}
}

func TestLogging(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := redistest.Start(t)
	core, logs := observer.New(zapcore.DebugLevel)
	e, err := New(Options{Redis: s.Client(t), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	if err := e.ToUser(ctx, "u-1", "secret-event", map[string]string{"token": "s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("got %d log entries, want 1: %v", len(entries), entries)
	}
	got := entries[0]
	if got.LoggerName != "emitter" || got.Level != zapcore.DebugLevel {
		t.Errorf("entry from %q at %v, want emitter at debug", got.LoggerName, got.Level)
	}
	want := map[string]any{"channel": "ws:user:u-1", "event": "secret-event", "subscribers": int64(0)}
	if !reflect.DeepEqual(got.ContextMap(), want) {
		t.Errorf("fields = %v, want %v", got.ContextMap(), want)
	}
	for _, f := range got.Context {
		if strings.Contains(fmt.Sprint(f.Interface, f.String), "s3cr3t") {
			t.Errorf("payload logged: %v", f)
		}
	}
}

func TestShardedUsesSPublish(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cl := redistest.StartCluster(t, 3)
	cc := cl.ClusterClient(t)
	e, err := New(Options{Redis: cc, Sharded: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })

	channel := protocol.ChannelUser("u1")
	// A sharded subscriber on the channel's master, and a plain one.
	master, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	ssub := master.SSubscribe(ctx, channel)
	t.Cleanup(func() { _ = ssub.Close() })
	msg, err := ssub.Receive(ctx)
	if s, ok := msg.(*redis.Subscription); err != nil || !ok || s.Kind != "ssubscribe" {
		t.Fatalf("ssubscribe %s: %v %v", channel, msg, err)
	}
	sub := subscribe(t, ctx, master, channel)

	if err := e.ToUser(ctx, "u1", "note", 1); err != nil {
		t.Fatalf("ToUser: %v", err)
	}
	if got, want := next(t, ssub).Payload, `{"serverId":"emitter","type":"user","target":"u1","event":"note","data":1}`; got != want {
		t.Fatalf("sharded payload\n got %s\nwant %s", got, want)
	}
	// The plain subscriber saw nothing: a PUBLISH afterwards is the first
	// message it gets.
	if err := master.Publish(ctx, channel, "marker").Err(); err != nil {
		t.Fatal(err)
	}
	if got := next(t, sub).Payload; got != "marker" {
		t.Fatalf("SUBSCRIBE saw %q before the marker", got)
	}
}
