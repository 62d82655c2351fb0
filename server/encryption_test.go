package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// wrapTransformer stands in for a cipher: it wraps every message as
// {"event":"encrypted","data":{"e":event,"d":data}} so tests can see which
// form a client got. The real cipher is tested in helpers/ecdh.
func wrapTransformer(_ context.Context, req server.OutboundRequest) (*server.OutboundResult, error) {
	return &server.OutboundResult{Event: protocol.EventEncrypted, Data: map[string]any{"e": req.Event, "d": req.Data}}, nil
}

func okHandshake(_ context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
	return &server.HandshakeResult{ServerPublicKey: "pk-" + req.UserID, Salt: "salt"}, nil
}

func expectWrapped(t *testing.T, c *wsClient, event, dataJSON string) {
	t.Helper()
	c.ExpectData(protocol.EventEncrypted, fmt.Sprintf(`{"e":%q,"d":%s}`, event, dataJSON))
}

func TestRequiredEncryption(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		Config:              server.Config{RequireEncryption: true},
		Handshake:           okHandshake,
		OutboundTransformer: wrapTransformer,
	})
	c := ts.dial(t)
	d := c.auth("enc") // "connected" arrives in plaintext
	if d.ServerPublicKey != "pk-enc" || d.Salt != "salt" {
		t.Errorf("connected %+v lacks handshake result", d)
	}
	if info, _ := ts.h.Client(c.ID); !info.Encrypted {
		t.Error("client not marked encrypted")
	}
	if err := ts.h.SendToClient(c.ID, "secret", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	expectWrapped(t, c, "secret", `{"n":1}`)
	c.Probe() // system replies stay plaintext
}

func TestHandshakeRejected(t *testing.T) {
	for _, tt := range []struct {
		name string
		give server.HandshakeFunc
	}{
		{"nil result", func(context.Context, server.HandshakeRequest) (*server.HandshakeResult, error) { return nil, nil }},
		{"error", func(context.Context, server.HandshakeRequest) (*server.HandshakeResult, error) {
			return nil, errors.New("bad key")
		}},
		{"panic", func(context.Context, server.HandshakeRequest) (*server.HandshakeResult, error) { panic("boom") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			connected := newRecorder[server.ClientConnectedEvent]()
			ts := startServer(t, nil, server.Options{
				Config:              server.Config{RequireEncryption: true},
				Handshake:           tt.give,
				OutboundTransformer: wrapTransformer,
				ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
					connected.Add(ev)
					return nil
				},
			})
			c := ts.dial(t)
			c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:x"})
			c.ExpectError(protocol.ErrMsgHandshakeFailed)
			c.ExpectClose(protocol.CloseEncryptionRequired, protocol.ReasonEncryptionRequired)
			eventually(t, "client removed", func() bool { return len(ts.h.Clients()) == 0 })
			if connected.Count() != 0 {
				t.Error("ClientConnected after failed handshake")
			}
		})
	}
}

func TestHandshakeStateIsolation(t *testing.T) {
	release := make(chan struct{})
	got := newRecorder[server.HandshakeRequest]()
	ts := startServer(t, nil, server.Options{
		Config: server.Config{RequireEncryption: true},
		Handshake: func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
			if req.UserID != "hs" {
				return okHandshake(ctx, req)
			}
			got.Add(req)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return okHandshake(ctx, req)
		},
		OutboundTransformer: wrapTransformer,
	})
	other := ts.dial(t)
	other.auth("other")
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:hs", "publicKey": "k"})
	req := got.Wait(t)
	if req.UserID != "hs" || !jsonEqual(req.Data, `{"token":"user:hs","publicKey":"k"}`) {
		t.Errorf("handshake request %+v", req)
	}
	if info, _ := ts.h.Client(req.ClientID); info.State != protocol.StateHandshaking {
		t.Errorf("state during handshake %q", info.State)
	}
	if err := ts.h.Broadcast("during-handshake", 1); err != nil {
		t.Fatal(err)
	}
	expectWrapped(t, other, "during-handshake", "1")
	c.Send("chat", nil)
	c.ExpectError(protocol.ErrMsgNotAuthenticated)
	close(release)
	c.Expect(protocol.EventConnected)
	c.Probe() // the broadcast never arrived
}

func TestSlowHandshakeTimesOut(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		Config: server.Config{RequireEncryption: true, AuthTimeout: 80 * time.Millisecond},
		Handshake: func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
			<-ctx.Done()
			return okHandshake(ctx, req)
		},
		OutboundTransformer: wrapTransformer,
	})
	c := ts.dial(t)
	c.Send(protocol.EventAuthenticate, map[string]string{"token": "user:slow"})
	c.ExpectClose(protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
}

func TestMixedRoomAndTransformerResults(t *testing.T) {
	ts := startServer(t, nil, server.Options{
		OutboundTransformer: func(ctx context.Context, req server.OutboundRequest) (*server.OutboundResult, error) {
			switch req.Event {
			case "as-is":
				return nil, nil
			case "fail":
				return nil, errors.New("no key")
			}
			return wrapTransformer(ctx, req)
		},
	})
	plain := ts.connect(t, "plain")
	enc := ts.connect(t, "enc")
	if err := ts.h.EnableClientEncryption(enc.ID); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"news", "as-is", "fail", "last"} {
		if err := ts.h.SendToRoom(protocol.DefaultRoom, ev, "x"); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range []string{"news", "as-is", "fail", "last"} {
		plain.ExpectData(ev, `"x"`)
	}
	expectWrapped(t, enc, "news", `"x"`)
	enc.ExpectData("as-is", `"x"`)
	expectWrapped(t, enc, "last", `"x"`) // "fail" was dropped for this client only
	enc.Probe()
	plain.Probe()
}

func TestEncryptedOrderingAndBatchLimit(t *testing.T) {
	var inFlight, maxInFlight atomic.Int64
	var calls atomic.Int64
	ts := startServer(t, nil, server.Options{
		Config: server.Config{EncryptedBatchLimit: 3},
		OutboundTransformer: func(ctx context.Context, req server.OutboundRequest) (*server.OutboundResult, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			// Uneven work, to tempt reordering and to overlap calls.
			time.Sleep(time.Duration(1+calls.Add(1)%4) * time.Millisecond)
			return wrapTransformer(ctx, req)
		},
	})
	var clients []*wsClient
	for i := range 12 {
		c := ts.connect(t, fmt.Sprintf("e%d", i))
		if err := ts.h.EnableClientEncryption(c.ID); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}

	// One fan-out: at most EncryptedBatchLimit transforms at a time.
	if err := ts.h.Broadcast("one", 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expectWrapped(t, c, "one", "0")
	}
	if m := maxInFlight.Load(); m > 3 || m < 2 {
		t.Errorf("%d transforms in flight for one fan-out, want 2..3", m)
	}

	// Many fan-outs and direct sends: each client sees them in send order.
	const messages = 20
	for i := range messages {
		if err := ts.h.Broadcast("seq", i); err != nil {
			t.Fatal(err)
		}
		if err := ts.h.SendToClient(clients[i%len(clients)].ID, "direct", i); err != nil {
			t.Fatal(err)
		}
	}
	for ci, c := range clients {
		for i := range messages {
			expectWrapped(t, c, "seq", fmt.Sprint(i))
			if i%len(clients) == ci {
				expectWrapped(t, c, "direct", fmt.Sprint(i))
			}
		}
		c.Probe()
	}
}

func TestInboundTransformer(t *testing.T) {
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, server.Options{
		Config:              server.Config{RequireEncryption: true},
		Handshake:           okHandshake,
		OutboundTransformer: wrapTransformer,
		InboundTransformer: func(_ context.Context, req server.InboundRequest) (*protocol.Message, error) {
			var m protocol.Message
			if err := json.Unmarshal(req.Data, &m); err != nil {
				return nil, err
			}
			return &m, nil
		},
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	})
	c := ts.dial(t)
	c.auth("in")
	c.Send(protocol.EventEncrypted, map[string]any{"event": "chat", "data": "hello"})
	ev := handled.Wait(t)
	if ev.Message.Event != "chat" || !jsonEqual(ev.Message.Data, `"hello"`) {
		t.Errorf("handler got %+v", ev.Message)
	}
	c.Send(protocol.EventEncrypted, "not an object")
	c.ExpectError(protocol.ErrMsgInvalidFormat)
}
