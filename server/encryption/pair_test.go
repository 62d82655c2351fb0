package encryption_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

func TestRoomMessageDecrypted(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	ts := startServer(t, nil, pair, server.Options{}, nil)
	c := ts.dial(t)
	c.authenticate("alice")
	d := c.connected()
	if d.ServerPublicKey != pair.ServerPublicKey() {
		t.Errorf("connected serverPublicKey %q, want the pair's %q", d.ServerPublicKey, pair.ServerPublicKey())
	}
	if info, _ := ts.h.Client(c.ID); !info.Encrypted {
		t.Error("client not marked encrypted")
	}
	if err := ts.h.SendToRoom(protocol.DefaultRoom, "news", map[string]any{"title": "hello", "n": 1}); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("news", `{"title":"hello","n":1}`)
	if err := ts.h.SendToClient(c.ID, "bare", nil); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("bare", `null`)
	c.Probe() // system replies stay plaintext
}

// TestPlainAndEncryptedInOneRoom uses optional encryption: a plain client
// and one that asked for encryption through a message share a room.
func TestPlainAndEncryptedInOneRoom(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	var h *server.Helper
	ts := startServer(t, nil, pair, server.Options{
		Message: func(ctx context.Context, ev server.MessageEvent) error {
			if ev.Message.Event != "start-encryption" {
				return nil
			}
			var d struct {
				PublicKey string `json:"publicKey"`
			}
			if err := json.Unmarshal(ev.Message.Data, &d); err != nil {
				return err
			}
			res, err := pair.Exchange(ctx, ev.ClientID, d.PublicKey)
			if err != nil {
				return err
			}
			// Reply in plaintext and switch in one step: the client must
			// learn the key before the first encrypted frame.
			return h.EnableClientEncryptionAfter(ev.ClientID, "encryption-ready", map[string]string{
				"serverPublicKey": res.ServerPublicKey, "salt": res.Salt,
			})
		},
	}, func(o *server.Options) { o.RequireEncryption = false })
	h = ts.h

	plain := ts.connectPlain(t, "plain")
	enc := ts.connectPlain(t, "enc")
	enc.Send("start-encryption", map[string]string{"publicKey": enc.priv.PublicKeyBase64()})
	f := enc.Expect("encryption-ready")
	var ready struct {
		ServerPublicKey string `json:"serverPublicKey"`
		Salt            string `json:"salt"`
	}
	if err := json.Unmarshal(f.Data, &ready); err != nil {
		t.Fatal(err)
	}
	enc.deriveKey(ready.ServerPublicKey, ready.Salt)

	for _, ev := range []string{"one", "two"} {
		if err := ts.h.SendToRoom(protocol.DefaultRoom, ev, map[string]string{"v": ev}); err != nil {
			t.Fatal(err)
		}
	}
	plain.ExpectData("one", `{"v":"one"}`)
	plain.ExpectData("two", `{"v":"two"}`)
	enc.expectEncrypted("one", `{"v":"one"}`)
	enc.expectEncrypted("two", `{"v":"two"}`)
	plain.Probe()
	enc.Probe()
	if n := pair.Len(); n != 1 {
		t.Errorf("pair holds %d keys, want 1", n)
	}
}

func TestHandshakeRejected(t *testing.T) {
	// A key whose standard encoding has a '+' or '/', so that its URL-safe
	// form differs (about one key in sixteen has neither).
	var valid *ecdh.PrivateKey
	for valid == nil || !strings.ContainsAny(valid.PublicKeyBase64(), "+/") {
		var err error
		if valid, err = ecdh.GenerateKey(); err != nil {
			t.Fatal(err)
		}
	}
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(valid.PublicKeyBase64())
	for _, tt := range []struct {
		name string
		give map[string]any
	}{
		{"missing publicKey", map[string]any{}},
		{"null publicKey", map[string]any{"publicKey": nil}},
		{"number publicKey", map[string]any{"publicKey": 4}},
		{"object publicKey", map[string]any{"publicKey": map[string]string{"x": "y"}}},
		{"wrong case member", map[string]any{"PublicKey": valid.PublicKeyBase64()}},
		{"empty", map[string]any{"publicKey": ""}},
		{"garbage", map[string]any{"publicKey": "not a key"}},
		{"url-safe", map[string]any{"publicKey": urlSafe}},
		{"unpadded", map[string]any{"publicKey": strings.TrimRight(valid.PublicKeyBase64(), "=")}},
		{"off curve", map[string]any{"publicKey": base64.StdEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			connected := newRecorder[server.ClientConnectedEvent]()
			pair := newPair(t, encryption.Options{})
			ts := startServer(t, nil, pair, server.Options{
				ClientConnected: func(_ context.Context, ev server.ClientConnectedEvent) error {
					connected.Add(ev)
					return nil
				},
			}, nil)
			c := ts.dial(t)
			data := map[string]any{"token": "user:x"}
			for k, v := range tt.give {
				data[k] = v
			}
			c.Send(protocol.EventAuthenticate, data)
			c.ExpectError(protocol.ErrMsgHandshakeFailed)
			c.ExpectClose(protocol.CloseEncryptionRequired, protocol.ReasonEncryptionRequired)
			eventually(t, "client removed", func() bool { return len(ts.h.Clients()) == 0 })
			if connected.Count() != 0 {
				t.Error("ClientConnected after a failed handshake")
			}
			if n := pair.Len(); n != 0 {
				t.Errorf("pair holds %d keys after a failed handshake", n)
			}
		})
	}
}

func TestKeyDroppedOnDisconnect(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	gone := newRecorder[server.ClientDisconnectedEvent]()
	ts := startServer(t, nil, pair, server.Options{
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			if pair.Len() != 0 {
				t.Errorf("application callback ran before the key was dropped")
			}
			gone.Add(ev)
			return nil
		},
	}, nil)
	c := ts.connectEncrypted(t, "bob")
	if n := pair.Len(); n != 1 {
		t.Fatalf("pair holds %d keys, want 1", n)
	}
	_ = c.Conn.Close()
	if ev := gone.Wait(t); ev.ClientID != c.ID || !ev.Authenticated {
		t.Errorf("disconnect event %+v", ev)
	}
	if n := pair.Len(); n != 0 {
		t.Errorf("pair holds %d keys after disconnect, want 0", n)
	}
}

func TestInboundRouted(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, pair, server.Options{
		ValidateRoom: func(_ context.Context, req server.ValidateRoomRequest) ([]string, error) { return req.Rooms, nil },
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	}, nil)
	c := ts.connectEncrypted(t, "carol")

	c.sendEncrypted("chat", map[string]string{"text": "hi"})
	ev := handled.Wait(t)
	if ev.ClientID != c.ID || ev.UserID != "carol" || ev.Message.Event != "chat" || !jsonEqual(ev.Message.Data, `{"text":"hi"}`) {
		t.Errorf("handler got %+v", ev)
	}

	// System events inside the envelope are routed too.
	c.sendEncrypted(protocol.EventJoin, map[string]any{"rooms": []string{"secret-room"}})
	eventually(t, "join", func() bool { return len(ts.h.ClientsInRoom("secret-room")) == 1 })
	if err := ts.h.SendToRoom("secret-room", "whisper", "psst"); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("whisper", `"psst"`)
	c.Probe()
	if n := handled.Count(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}

func TestInboundInvalid(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, pair, server.Options{
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	}, nil)
	c := ts.connectEncrypted(t, "dave")
	other, err := ecdh.NewKeyFromBytes(make([]byte, ecdh.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	seal := func(k *ecdh.Key, plain string) ecdh.Sealed {
		s, err := k.Encrypt([]byte(plain), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tampered := seal(c.key, `{"event":"chat","data":1}`)
	ct, _ := base64.StdEncoding.DecodeString(tampered.CT)
	ct[0] ^= 1
	tampered.CT = base64.StdEncoding.EncodeToString(ct)

	for _, tt := range []struct {
		name string
		give any
	}{
		{"tampered ciphertext", tampered},
		{"other key", seal(other, `{"event":"chat"}`)},
		{"not an object", "iv.ct"},
		{"null", nil},
		{"missing ct", map[string]string{"iv": tampered.IV}},
		{"numbers", map[string]int{"iv": 1, "ct": 2}},
		{"plaintext not json", seal(c.key, `chat`)},
		{"plaintext array", seal(c.key, `[{"event":"chat"}]`)},
		{"plaintext without event", seal(c.key, `{"data":1}`)},
		{"plaintext with number event", seal(c.key, `{"event":7}`)},
		{"plaintext invalid utf-8", seal(c.key, "{\"event\":\"chat\",\"data\":\"\xff\"}")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.give == nil {
				c.SendRaw(`{"event":"encrypted","data":null}`)
			} else {
				c.Send(protocol.EventEncrypted, tt.give)
			}
			c.ExpectError(protocol.ErrMsgInvalidFormat)
		})
	}
	c.Probe()
	if n := handled.Count(); n != 0 {
		t.Errorf("handler called %d times for invalid frames", n)
	}
}

func TestSlowHandshakeTimesOut(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	finished := make(chan error, 1)
	ts := startServer(t, nil, pair, server.Options{
		Config: server.Config{AuthTimeout: 80 * time.Millisecond},
	}, func(o *server.Options) {
		real := o.Handshake
		o.Handshake = func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
			<-ctx.Done() // slower than 3×AuthTimeout
			res, err := real(ctx, req)
			finished <- err
			return res, err
		}
	})
	c := ts.dial(t)
	c.authenticate("slow")
	c.ExpectClose(protocol.CloseAuthTimeout, protocol.ReasonAuthTimeout)
	select {
	case err := <-finished:
		if err == nil {
			t.Error("handshake succeeded after its client timed out")
		}
	case <-time.After(waitTimeout):
		t.Fatal("handshake did not finish")
	}
	eventually(t, "client removed", func() bool { return len(ts.h.Clients()) == 0 })
	if n := pair.Len(); n != 0 {
		t.Errorf("pair holds %d keys after the timeout, want 0", n)
	}
}

func TestBroadcastDuringHandshake(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	started := make(chan struct{})
	release := make(chan struct{})
	ts := startServer(t, nil, pair, server.Options{}, func(o *server.Options) {
		real := o.Handshake
		o.Handshake = func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
			if req.UserID == "pending" {
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return real(ctx, req)
		}
	})
	other := ts.connectEncrypted(t, "other")
	c := ts.dial(t)
	c.authenticate("pending")
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("handshake did not start")
	}
	if err := ts.h.Broadcast("during-handshake", 1); err != nil {
		t.Fatal(err)
	}
	other.expectEncrypted("during-handshake", "1")
	c.Send("chat", nil)
	c.ExpectError(protocol.ErrMsgNotAuthenticated)
	close(release)
	c.connected()
	c.Probe() // the broadcast never arrived, neither plain nor encrypted
	if err := ts.h.Broadcast("after-handshake", 2); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("after-handshake", "2")
	other.expectEncrypted("after-handshake", "2")
}

func TestEncryptedWithoutKeyDropsMessage(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	ts := startServer(t, nil, pair, server.Options{}, func(o *server.Options) { o.RequireEncryption = false })
	c := ts.connectPlain(t, "nokey")
	if err := ts.h.EnableClientEncryption(c.ID); err != nil {
		t.Fatal(err)
	}
	if err := ts.h.SendToClient(c.ID, "secret", "must not leak"); err != nil {
		t.Fatal(err)
	}
	c.Probe() // dropped rather than sent in plaintext
	if st := ts.h.Stats(); st.MessagesDropped == 0 {
		t.Errorf("stats %+v: drop not counted", st)
	}
}

func TestAAD(t *testing.T) {
	aad := func(clientID string) []byte { return []byte("app-v1:" + clientID) }
	pair := newPair(t, encryption.Options{AAD: aad})
	handled := newRecorder[server.MessageEvent]()
	ts := startServer(t, nil, pair, server.Options{
		Message: func(_ context.Context, ev server.MessageEvent) error {
			handled.Add(ev)
			return nil
		},
	}, nil)
	c := ts.connectEncrypted(t, "erin")
	if err := ts.h.SendToClient(c.ID, "hello", 1); err != nil {
		t.Fatal(err)
	}
	f := c.Next()
	var sealed ecdh.Sealed
	if err := json.Unmarshal(f.Data, &sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.key.Decrypt(sealed, nil); !errors.Is(err, ecdh.ErrDecrypt) {
		t.Errorf("decrypt without AAD: %v, want ErrDecrypt", err)
	}
	c.aad = aad(c.ID)
	if inner := c.decrypt(f); inner.Event != "hello" {
		t.Errorf("decrypted %+v", inner)
	}

	c.sendEncrypted("chat", "with aad")
	if ev := handled.Wait(t); !jsonEqual(ev.Message.Data, `"with aad"`) {
		t.Errorf("handler got %+v", ev)
	}
	c.aad = nil
	c.sendEncrypted("chat", "without aad")
	c.ExpectError(protocol.ErrMsgInvalidFormat)
}

// TestAcrossInstances: a message published by one instance reaches an
// encrypted client of another through that instance's pair.
func TestAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, rs, newPair(t, encryption.Options{}), server.Options{}, nil)
	b := startServer(t, rs, newPair(t, encryption.Options{}), server.Options{}, nil)
	c := b.connectEncrypted(t, "frank")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.h.PublishToRoom(ctx, protocol.DefaultRoom, "fleet", map[string]string{"from": "a"}); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("fleet", `{"from":"a"}`)
	if err := a.h.PublishToUser(ctx, "frank", "direct", 2); err != nil {
		t.Fatal(err)
	}
	c.expectEncrypted("direct", "2")
}

func TestApply(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	var called []string
	opts := server.Options{
		ClientDisconnected: func(_ context.Context, ev server.ClientDisconnectedEvent) error {
			called = append(called, ev.ClientID)
			return errors.New("app error")
		},
	}
	pair.Apply(&opts)
	if !opts.RequireEncryption || opts.Handshake == nil || opts.OutboundTransformer == nil || opts.InboundTransformer == nil {
		t.Fatalf("Apply left %+v", opts)
	}
	ctx := context.Background()
	if _, err := opts.Handshake(ctx, handshakeRequest(t, "c1")); err != nil {
		t.Fatal(err)
	}
	err := opts.ClientDisconnected(ctx, server.ClientDisconnectedEvent{ClientID: "c1"})
	if err == nil || len(called) != 1 || called[0] != "c1" || pair.Len() != 0 {
		t.Errorf("wrapped disconnect: err %v, called %v, keys %d", err, called, pair.Len())
	}
	if err := pair.WrapDisconnected(nil)(ctx, server.ClientDisconnectedEvent{ClientID: "c1"}); err != nil {
		t.Errorf("wrap of nil: %v", err)
	}
}

// handshakeRequest is an authenticate payload with a fresh client key.
func handshakeRequest(t testing.TB, clientID string) server.HandshakeRequest {
	t.Helper()
	k, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]string{"token": "t", "publicKey": k.PublicKeyBase64()})
	return server.HandshakeRequest{ClientID: clientID, UserID: "u", Data: data}
}

func TestHandshakeErrors(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	key := handshakeRequest(t, "x")
	for _, tt := range []struct {
		give string
		want error
	}{
		{`null`, encryption.ErrNoPublicKey},
		{`"publicKey"`, encryption.ErrNoPublicKey},
		{`[{"publicKey":"x"}]`, encryption.ErrNoPublicKey},
		{`{"token":"t"}`, encryption.ErrNoPublicKey},
		{`{"publicKey":true}`, encryption.ErrNoPublicKey},
		{`{"publicKey":"AAAA"}`, ecdh.ErrInvalidPublicKey},
		{`{"publicKey":"` + strings.Repeat("A", 88) + `"}`, ecdh.ErrInvalidPublicKey},
		{string(key.Data), nil},
	} {
		t.Run(tt.give, func(t *testing.T) {
			res, err := pair.Handshake()(context.Background(), server.HandshakeRequest{ClientID: "x", Data: json.RawMessage(tt.give)})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (res != nil) {
				t.Fatalf("got %+v, %v; want error %v", res, err, tt.want)
			}
		})
	}
}

func TestExchangeAbandoned(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pair.Handshake()(ctx, handshakeRequest(t, "late")); !errors.Is(err, context.Canceled) {
		t.Errorf("handshake with a done context: %v", err)
	}
	if n := pair.Len(); n != 0 {
		t.Errorf("pair holds %d keys", n)
	}
}

// TestOutboundPlaintext pins the exact bytes under the seal.
func TestOutboundPlaintext(t *testing.T) {
	serverKey, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pair := newPair(t, encryption.Options{PrivateKey: serverKey})
	if pair.ServerPublicKey() != serverKey.PublicKeyBase64() {
		t.Error("ServerPublicKey is not the given key's")
	}
	client, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]string{"publicKey": client.PublicKeyBase64()})
	hs, err := pair.Handshake()(context.Background(), server.HandshakeRequest{ClientID: "c", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdh.DeriveKey(client, hs.ServerPublicKey, hs.Salt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		event string
		data  string
		want  string
	}{
		{"news", `{"a":[1,2]}`, `{"event":"news","data":{"a":[1,2]}}`},
		{"none", `null`, `{"event":"none","data":null}`},
		{`q"<`, `"x"`, `{"event":"q\"\u003c","data":"x"}`},
	} {
		res, err := pair.Outbound()(context.Background(), server.OutboundRequest{
			Client: server.ClientInfo{ID: "c"}, Event: tt.event, Data: json.RawMessage(tt.data),
		})
		if err != nil {
			t.Fatal(err)
		}
		sealed, ok := res.Data.(ecdh.Sealed)
		if res.Event != protocol.EventEncrypted || !ok {
			t.Fatalf("result %+v", res)
		}
		plain, err := key.Decrypt(sealed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(plain) != tt.want {
			t.Errorf("plaintext %s, want %s", plain, tt.want)
		}
	}
	if _, err := pair.Outbound()(context.Background(), server.OutboundRequest{Client: server.ClientInfo{ID: "other"}, Event: "x"}); !errors.Is(err, encryption.ErrNoKey) {
		t.Errorf("outbound without key: %v, want ErrNoKey", err)
	}
	if _, err := pair.Inbound()(context.Background(), server.InboundRequest{Client: server.ClientInfo{ID: "other"}, Data: json.RawMessage(`{"iv":"","ct":""}`)}); !errors.Is(err, encryption.ErrNoKey) {
		t.Errorf("inbound without key: %v, want ErrNoKey", err)
	}
}

func TestJSHandler(t *testing.T) {
	srv := httptest.NewServer(encryption.JSHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/js/" + encryption.ClientJSName)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("GET: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if string(body) != string(encryption.ClientJS()) || !strings.Contains(string(body), "export class IgnisSocket") {
		t.Errorf("GET body is not the client module (%d bytes)", len(body))
	}
	resp, err = http.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp.Status)
	}
	js := encryption.ClientJS()
	js[0] = 'X'
	if encryption.ClientJS()[0] == 'X' {
		t.Error("ClientJS returns the embedded slice itself")
	}
}

func TestKeysDroppedOnShutdown(t *testing.T) {
	pair := newPair(t, encryption.Options{})
	ts := startServer(t, nil, pair, server.Options{}, nil)
	var clients []*wsClient
	for _, u := range []string{"a", "b", "c"} {
		clients = append(clients, ts.connectEncrypted(t, u))
	}
	if n := pair.Len(); n != len(clients) {
		t.Fatalf("pair holds %d keys, want %d", n, len(clients))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	// Shutdown waits for the clients' close replies, so they read meanwhile.
	go func() { done <- ts.h.Shutdown(ctx) }()
	for _, c := range clients {
		c.ExpectClose(protocol.CloseGoingAway, protocol.ReasonShutdown)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := pair.Len(); n != 0 {
		t.Errorf("pair holds %d keys after Shutdown, want 0", n)
	}
}
