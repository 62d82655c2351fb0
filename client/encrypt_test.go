package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ignis-go/wscomponent/client"
	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
	"github.com/ignis-go/wscomponent/wstest"
)

// encryptedServer is a server that requires encryption both ways
// (RequireEncryption through pair.Apply, and RequireEncryptedInbound, so a
// plaintext frame from the client other than heartbeat would be answered
// "Encryption required"). keys, when not nil, records the publicKey of
// every authenticate payload the handshake sees.
func encryptedServer(tb testing.TB, addr string, pair *encryption.Pair, cfg server.Config, keys *wstest.Recorder[string]) *testServer {
	tb.Helper()
	cfg.RequireEncryptedInbound = true
	opts := server.Options{Config: cfg}
	pair.Apply(&opts)
	if keys != nil {
		hs := opts.Handshake
		opts.Handshake = func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
			var d struct {
				PublicKey string `json:"publicKey"`
			}
			_ = json.Unmarshal(req.Data, &d)
			keys.Add(d.PublicKey)
			return hs(ctx, req)
		}
	}
	return startServer(tb, addr, opts)
}

// newPair returns a Pair with a fixed private key when priv is not nil.
func newPair(tb testing.TB, priv *ecdh.PrivateKey) *encryption.Pair {
	tb.Helper()
	p, err := encryption.New(encryption.Options{PrivateKey: priv})
	if err != nil {
		tb.Fatalf("encryption.New: %v", err)
	}
	return p
}

func newKey(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestEncryptedSession: every request kind of the client goes sealed (the
// server refuses plaintext ones) and every answer and room message comes
// back opened, with the request id kept outside the envelope.
func TestEncryptedSession(t *testing.T) {
	cfg := server.Config{PresenceRooms: func(r string) bool { return r == "team" }}
	pair := newPair(t, nil)
	keys := wstest.NewRecorder[string]()
	ts := encryptedServer(t, "", pair, cfg, keys)
	events := wstest.NewRecorder[client.Frame]()
	serverErrs := wstest.NewRecorder[*client.ServerError]()
	c := dial(t, ts.url(), client.Options{Credentials: token("expiring:alice:60000"), Encrypt: true,
		ServerPublicKey: pair.ServerPublicKey(), OnEvent: events.Add, OnServerError: serverErrs.Add,
		HeartbeatInterval: 20 * time.Millisecond}) // heartbeats stay plaintext: the server must take them

	got := c.Connected()
	if !got.Encrypted || got.ServerPublicKey != pair.ServerPublicKey() || got.Salt == "" || got.UserID != "alice" {
		t.Fatalf("connected %+v, want an encrypted session with the pair's key", got)
	}
	if pub := keys.Wait(t); pub == "" {
		t.Fatal("authenticate carried no publicKey")
	} else if _, err := ecdh.ParsePublicKey(pub); err != nil {
		t.Fatalf("authenticate publicKey: %v", err)
	}

	ack, err := c.Join(ctxT(t), "lobby", "team", "secret-room")
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if !slices.Equal(ack.Rooms, []string{"lobby", "team"}) || len(ack.Refused) != 1 || ack.Refused[0].Room != "secret-room" {
		t.Fatalf("join ack %+v", ack)
	}

	if err := ts.h.PublishToRoom(ctxT(t), "lobby", "news", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if f := events.Wait(t); f.Event != "news" || !wstest.JSONEqual(f.Data, `{"n":1}`) {
		t.Fatalf("room message %+v, want news {n:1} decrypted", f)
	}

	f, err := c.Request(ctxT(t), "echo", map[string]string{"text": "hi"})
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if f.Event != "echo" || f.ID == "" || !wstest.JSONEqual(f.Data, `{"text":"hi"}`) {
		t.Fatalf("reply %+v, want echo {text:hi} with the request id", f)
	}
	ev := ts.Messages.Wait(t)
	if !ev.Encrypted || ev.Message.ID != f.ID || ev.Message.Event != "echo" {
		t.Fatalf("server got %+v, want an encrypted echo with id %s", ev, f.ID)
	}

	_, err = c.Request(ctxT(t), "fail", nil)
	var se *client.ServerError
	if !errors.As(err, &se) || se.Message != "bad input" {
		t.Fatalf("Request fail: %v, want ServerError bad input", err)
	}
	if ev := ts.Messages.Wait(t); !ev.Encrypted || ev.Message.Event != "fail" {
		t.Fatalf("server got %+v, want an encrypted fail", ev)
	}

	if err := c.Send("note", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	if ev := ts.Messages.Wait(t); !ev.Encrypted || ev.Message.Event != "note" || ev.Message.ID != "" || !wstest.JSONEqual(ev.Message.Data, `{"n":7}`) {
		t.Fatalf("server got %+v, want an encrypted note without id", ev)
	}

	p, err := c.Presence(ctxT(t), "team")
	if err != nil || p.Room != "team" || len(p.Clients) != 1 || p.Clients[0].UserID != "alice" {
		t.Fatalf("Presence = %+v, %v", p, err)
	}
	if at, err := c.Refresh(ctxT(t)); err != nil || time.Until(at) < 50*time.Second {
		t.Fatalf("Refresh = %v, %v", at, err)
	}
	if ack, err := c.Leave(ctxT(t), "lobby"); err != nil || !slices.Equal(ack.Rooms, []string{"lobby"}) {
		t.Fatalf("Leave = %+v, %v", ack, err)
	}
	// A round trip after some heartbeats: none of them was refused.
	time.Sleep(100 * time.Millisecond)
	if _, err := c.Request(ctxT(t), "echo", nil); err != nil {
		t.Fatalf("Request: %v", err)
	}
	if n := serverErrs.Count(); n != 0 {
		t.Fatalf("%d server errors (first: %v), want none", n, serverErrs.Wait(t))
	}
}

// TestEncryptionRefused: what does not complete the handshake fails Dial,
// on either side.
func TestEncryptionRefused(t *testing.T) {
	pair := newPair(t, nil)
	enc := encryptedServer(t, "", pair, server.Config{}, nil)
	plain := startServer(t, "", server.Options{})
	other := newKey(t).PublicKeyBase64()
	tests := []struct {
		name    string
		url     string
		give    client.Options
		wantIs  error // errors.Is
		wantErr string
		wantCE  int // a *client.CloseError with this code
	}{
		{
			name:   "plaintext client",
			url:    enc.url(),
			give:   client.Options{Credentials: token("user:alice")},
			wantCE: protocol.CloseEncryptionRequired,
		},
		{
			name:   "wrong pinned key",
			url:    enc.url(),
			give:   client.Options{Credentials: token("user:alice"), Encrypt: true, ServerPublicKey: other},
			wantIs: client.ErrServerKeyMismatch,
		},
		{
			name:   "server without encryption",
			url:    plain.url(),
			give:   client.Options{Credentials: token("user:alice"), Encrypt: true},
			wantIs: client.ErrEncryptionHandshake,
		},
		{
			name:    "credentials not an object",
			url:     enc.url(),
			give:    client.Options{Encrypt: true, Credentials: func(context.Context) (any, error) { return "user:alice", nil }},
			wantErr: "needs Credentials to return a JSON object",
		},
		{
			name:    "pinned key without Encrypt",
			url:     enc.url(),
			give:    client.Options{Credentials: token("user:alice"), ServerPublicKey: other},
			wantErr: "Encrypt is not",
		},
		{
			name:   "pinned key malformed",
			url:    enc.url(),
			give:   client.Options{Credentials: token("user:alice"), Encrypt: true, ServerPublicKey: strings.TrimSuffix(other, "=")},
			wantIs: ecdh.ErrInvalidPublicKey,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(ctxT(t), tt.url, tt.give)
			if c != nil {
				_ = c.Close()
				t.Fatal("Dial succeeded, want a refusal")
			}
			switch {
			case tt.wantCE != 0:
				ce := wantClose(t, err, tt.wantCE, protocol.ReasonEncryptionRequired)
				if ce.Message != protocol.ErrMsgHandshakeFailed {
					t.Fatalf("message %q, want %q", ce.Message, protocol.ErrMsgHandshakeFailed)
				}
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("Dial: %v, want %v", err, tt.wantIs)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Dial: %v, want an error containing %q", err, tt.wantErr)
				}
			}
		})
	}
	// The refused connections are gone from the servers too.
	wstest.Eventually(t, "refused clients gone", func() bool {
		return len(enc.h.Clients()) == 0 && len(plain.h.Clients()) == 0
	})
}

// TestEncryptedReconnect: after a server restart the client handshakes
// again with a fresh key pair (the server gets a new public key and gives
// a new salt), still accepts the pinned server key, rejoins its rooms and
// talks sealed again.
func TestEncryptedReconnect(t *testing.T) {
	serverKey := newKey(t) // kept across the restart, so the pin holds
	keys := wstest.NewRecorder[string]()
	ts := encryptedServer(t, "", newPair(t, serverKey), server.Config{}, keys)
	addr := ts.addr()
	events := wstest.NewRecorder[client.Frame]()
	back := wstest.NewRecorder[client.Reconnected]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), Encrypt: true,
		ServerPublicKey: serverKey.PublicKeyBase64(), Reconnect: fast, OnEvent: events.Add, OnReconnect: back.Add})
	if _, err := c.Join(ctxT(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	first := c.Connected()
	firstKey := keys.Wait(t)

	if err := ts.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ts2 := encryptedServer(t, addr, newPair(t, serverKey), server.Config{}, keys)

	r := back.Wait(t)
	if !r.Connected.Encrypted || r.Connected.ID == first.ID || r.Connected.Salt == first.Salt {
		t.Fatalf("reconnected as %+v, first session %+v: want a new encrypted session with a new salt", r.Connected, first)
	}
	if !slices.Equal(r.Rejoin.Rooms, []string{"lobby"}) {
		t.Fatalf("rejoin %+v, want lobby", r.Rejoin)
	}
	if secondKey := keys.Wait(t); secondKey == "" || secondKey == firstKey {
		t.Fatalf("second handshake sent publicKey %q, first %q: want a fresh one", secondKey, firstKey)
	}
	if err := ts2.h.PublishToRoom(ctxT(t), "lobby", "after-restart", "hello"); err != nil {
		t.Fatal(err)
	}
	if f := events.Wait(t); f.Event != "after-restart" || !wstest.JSONEqual(f.Data, `"hello"`) {
		t.Fatalf("got %+v, want after-restart decrypted", f)
	}
	f, err := c.Request(ctxT(t), "echo", "x")
	if err != nil || f.Event != "echo" {
		t.Fatalf("Request on the new session: %+v %v", f, err)
	}
	if ev := ts2.Messages.Wait(t); !ev.Encrypted || ev.Message.ID != f.ID {
		t.Fatalf("server got %+v, want an encrypted echo", ev)
	}
}

// TestEncryptedReconnectKeyChanged: a server that comes back with another
// key than the pinned one is refused, and the client stops rather than
// retry or fall back to plaintext.
func TestEncryptedReconnectKeyChanged(t *testing.T) {
	pinned := newKey(t)
	ts := encryptedServer(t, "", newPair(t, pinned), server.Config{}, nil)
	addr := ts.addr()
	lost := wstest.NewRecorder[client.Disconnected]()
	c := dial(t, ts.url(), client.Options{Credentials: token("user:alice"), Encrypt: true,
		ServerPublicKey: pinned.PublicKeyBase64(), Reconnect: fast, OnDisconnect: lost.Add})
	if err := ts.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := lost.Wait(t); !d.Reconnecting {
		t.Fatalf("OnDisconnect %+v, want a reconnect after 1001", d)
	}
	ts2 := encryptedServer(t, addr, newPair(t, nil), server.Config{}, nil) // a new key
	waitDone(t, c)
	if err := c.Err(); !errors.Is(err, client.ErrServerKeyMismatch) {
		t.Fatalf("Err() = %v, want ErrServerKeyMismatch", err)
	}
	if d := lost.Wait(t); d.Reconnecting || !errors.Is(d.Err, client.ErrServerKeyMismatch) {
		t.Fatalf("last OnDisconnect %+v, want the mismatch and no reconnect", d)
	}
	wstest.Eventually(t, "refused client gone", func() bool { return len(ts2.h.Clients()) == 0 })
}
