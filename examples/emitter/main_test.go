package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ignis-go/wscomponent/helpers/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 5 * time.Second

// subscriber listens on every ws: channel of a fresh miniredis.
type subscriber struct {
	t  testing.TB
	ps *redis.PubSub
}

func startRedis(t testing.TB) (url string, sub *subscriber) {
	t.Helper()
	mr := miniredis.RunT(t) // closed by t.Cleanup
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ps := rdb.PSubscribe(ctx, "ws:*")
	t.Cleanup(func() { ps.Close() })
	// Wait for the confirmation, or a publish could go out before it.
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("psubscribe: %v", err)
	}
	return "redis://" + mr.Addr() + "/0", &subscriber{t: t, ps: ps}
}

func (s *subscriber) next() (channel string, env protocol.Envelope) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	msg, err := s.ps.ReceiveMessage(ctx)
	if err != nil {
		s.t.Fatalf("no message: %v", err)
	}
	if err := json.Unmarshal([]byte(msg.Payload), &env); err != nil {
		s.t.Fatalf("envelope is not JSON: %s", msg.Payload)
	}
	return msg.Channel, env
}

func TestRunPublishesEnvelopes(t *testing.T) {
	for _, tt := range []struct {
		name        string
		args        []string
		wantChannel string
		want        protocol.Envelope
	}{
		{
			name:        "room",
			args:        []string{"-type", "room", "-target", "lobby", "-event", "chat", "-data", `{"text": "hi"}`, "-exclude", "c1, c2,"},
			wantChannel: "ws:room:lobby",
			want: protocol.Envelope{ServerID: "emitter", Type: protocol.TypeRoom, Target: "lobby", Event: "chat",
				Data: json.RawMessage(`{"text":"hi"}`), Exclude: []string{"c1", "c2"}},
		},
		{
			name:        "client",
			args:        []string{"-type", "client", "-target", "c9", "-event", "ping", "-data", "42"},
			wantChannel: "ws:client:c9",
			want:        protocol.Envelope{ServerID: "emitter", Type: protocol.TypeClient, Target: "c9", Event: "ping", Data: json.RawMessage(`42`)},
		},
		{
			name:        "user",
			args:        []string{"-type", "user", "-target", "u1", "-event", "notice"},
			wantChannel: "ws:user:u1",
			want:        protocol.Envelope{ServerID: "emitter", Type: protocol.TypeUser, Target: "u1", Event: "notice", Data: json.RawMessage(`null`)},
		},
		{
			name:        "broadcast",
			args:        []string{"-type", "broadcast", "-event", "news", "-data", `["a"]`, "-exclude", "c3"},
			wantChannel: "ws:broadcast",
			want: protocol.Envelope{ServerID: "emitter", Type: protocol.TypeBroadcast, Event: "news",
				Data: json.RawMessage(`["a"]`), Exclude: []string{"c3"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, sub := startRedis(t)
			o, err := parseOptions(append([]string{"-redis", url}, tt.args...), noEnv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := run(context.Background(), o, &out); err != nil {
				t.Fatal(err)
			}
			channel, env := sub.next()
			if channel != tt.wantChannel {
				t.Errorf("channel %q, want %q", channel, tt.wantChannel)
			}
			if !reflect.DeepEqual(env, tt.want) {
				t.Errorf("envelope\n got %+v\nwant %+v", env, tt.want)
			}
			if !strings.HasPrefix(out.String(), "published #1: "+string(tt.want.Type)) {
				t.Errorf("printed %q", out.String())
			}
		})
	}
}

func TestRunRepeats(t *testing.T) {
	url, sub := startRedis(t)
	o, err := parseOptions([]string{"-redis", url, "-target", "lobby", "-event", "tick", "-every", "1ms", "-count", "3"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, env := sub.next(); env.Event != "tick" {
			t.Errorf("got %+v", env)
		}
	}
	if n := strings.Count(out.String(), "published #"); n != 3 {
		t.Errorf("printed %d lines, want 3:\n%s", n, out.String())
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	url, sub := startRedis(t)
	o, err := parseOptions([]string{"-redis", url, "-target", "lobby", "-event", "tick", "-every", "1h", "-count", "0"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, io.Discard) }()
	sub.next() // the first message goes out at once
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunReportsUnreachableRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	url := "redis://" + mr.Addr() + "/0?dial_timeout=1s&max_retries=-1"
	mr.Close() // nothing listens there any more
	o, err := parseOptions([]string{"-redis", url, "-target", "lobby", "-event", "x"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), o, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("run: %v, want a not-reachable error", err)
	}
}

func noEnv(string) string { return "" }

func TestParseOptions(t *testing.T) {
	for _, tt := range []struct {
		name    string
		give    []string
		env     map[string]string
		wantErr string
		check   func(options) bool
	}{
		{name: "defaults", give: []string{"-target", "lobby", "-event", "e"}, check: func(o options) bool {
			return o.RedisURL == defaultRedisURL && o.Type == protocol.TypeRoom && string(o.Data) == "null" && o.Count == 1
		}},
		{name: "env redis", give: []string{"-target", "lobby", "-event", "e"}, env: map[string]string{"REDIS_URL": "redis://r:1/2"},
			check: func(o options) bool { return o.RedisURL == "redis://r:1/2" }},
		{name: "flag wins", give: []string{"-redis", "redis://f:1/0", "-target", "lobby", "-event", "e"}, env: map[string]string{"REDIS_URL": "redis://r:1/2"},
			check: func(o options) bool { return o.RedisURL == "redis://f:1/0" }},
		{name: "bad type", give: []string{"-type", "everyone", "-event", "e"}, wantErr: "-type"},
		{name: "no target", give: []string{"-type", "user", "-event", "e"}, wantErr: "needs -target"},
		{name: "broadcast target", give: []string{"-type", "broadcast", "-target", "x", "-event", "e"}, wantErr: "not used"},
		{name: "no event", give: []string{"-target", "lobby"}, wantErr: "-event is required"},
		{name: "system event", give: []string{"-target", "lobby", "-event", "connected"}, wantErr: "reserved"},
		{name: "bad json", give: []string{"-target", "lobby", "-event", "e", "-data", "{text:1}"}, wantErr: "not valid JSON"},
		{name: "exclude for user", give: []string{"-type", "user", "-target", "u", "-event", "e", "-exclude", "c"}, wantErr: "-exclude"},
		{name: "forever without every", give: []string{"-target", "lobby", "-event", "e", "-count", "0"}, wantErr: "needs -every"},
		{name: "negative every", give: []string{"-target", "lobby", "-event", "e", "-every", "-1s"}, wantErr: "negative"},
		{name: "stray argument", give: []string{"-target", "lobby", "-event", "e", "extra"}, wantErr: "unexpected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.give, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Errorf("got %+v", o)
			}
		})
	}
}
