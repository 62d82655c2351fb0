package wscomponent_test

import (
	"encoding/json"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/fx"

	"github.com/ignis-go/wscomponent"
	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/internal/redistest"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// TestProvideEncryption wires the ready pair through fx and checks, with a
// Go client doing real ECDH, that room messages arrive encrypted and that
// the key is dropped when the client leaves.
func TestProvideEncryption(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	srv := &loopbackEcho{}
	var pair *encryption.Pair
	_, h := startApp(t,
		baseOptions(srv, rdb),
		wscomponent.ProvideAuthenticateHandler(newAuthenticate),
		wscomponent.SupplyServerOptions(wscomponent.ServerOptions{RequireEncryption: true}),
		wscomponent.ProvideEncryption(func() (*encryption.Pair, error) { return encryption.New(encryption.Options{}) }),
		fx.Populate(&pair),
	)
	priv, err := ecdh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv.url("/ws"))
	send(t, c, protocol.EventAuthenticate, map[string]string{"token": "t-alice", "publicKey": priv.PublicKeyBase64()})
	m := read(t, c)
	if m.Event != protocol.EventConnected {
		t.Fatalf("got %q %s", m.Event, m.Data)
	}
	var d protocol.ConnectedData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ServerPublicKey != pair.ServerPublicKey() || d.Salt == "" {
		t.Fatalf("connected %+v", d)
	}
	key, err := ecdh.DeriveKey(priv, d.ServerPublicKey, d.Salt)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SendToRoom(protocol.DefaultRoom, "secret", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	m = read(t, c)
	if m.Event != protocol.EventEncrypted {
		t.Fatalf("got %q %s, want encrypted", m.Event, m.Data)
	}
	var sealed ecdh.Sealed
	if err := json.Unmarshal(m.Data, &sealed); err != nil {
		t.Fatal(err)
	}
	var inner protocol.Message
	if err := key.DecryptJSON(sealed, nil, &inner); err != nil {
		t.Fatal(err)
	}
	if inner.Event != "secret" || string(inner.Data) != `{"n":7}` {
		t.Fatalf("decrypted %+v", inner)
	}
	if pair.Len() != 1 {
		t.Fatalf("%d keys stored", pair.Len())
	}
	_ = c.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	eventually(t, "key dropped on disconnect", func() bool { return pair.Len() == 0 })
}
