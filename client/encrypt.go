package client

import (
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
)

// Per-connection encryption (Options.Encrypt), the flow of server/encryption
// and of the JavaScript client: a fresh P-256 key pair per connection, its
// public key in "authenticate", the message key derived from the
// serverPublicKey and salt of "connected", and every frame but heartbeat
// sealed in an "encrypted" envelope both ways.

// clientRefusedReason is the reason of the close the client sends when it
// refuses the server's "connected" (the JS client sends the same).
const clientRefusedReason = "client refused handshake"

// parsePinned validates Options.ServerPublicKey at Dial, so that a typo
// fails there rather than as a mismatch on every connection.
func parsePinned(o Options) (*ecdh.PublicKey, error) {
	if o.ServerPublicKey == "" {
		return nil, nil
	}
	if !o.Encrypt {
		return nil, fmt.Errorf("client: Options.ServerPublicKey is set but Options.Encrypt is not: set Encrypt to use the pinned key")
	}
	pub, err := ecdh.ParsePublicKey(o.ServerPublicKey)
	if err != nil {
		return nil, fmt.Errorf("client: Options.ServerPublicKey: %w", err)
	}
	return pub, nil
}

// withPublicKey returns the authenticate payload creds (already JSON, nil
// for none) with "publicKey" set to pub. The payload must be a JSON object
// (or nothing, which becomes {}): that is where the server's handshake
// looks for the key. A "publicKey" already there is replaced, as the JS
// client does: only the key generated here can be used.
func withPublicKey(creds json.RawMessage, pub string) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if len(creds) > 0 && string(creds) != "null" {
		if creds[0] != '{' || json.Unmarshal(creds, &fields) != nil {
			return nil, fmt.Errorf("client: Options.Encrypt needs Credentials to return a JSON object (e.g. map[string]string{\"token\": …}), got %.40s", creds)
		}
	}
	fields["publicKey"], _ = json.Marshal(pub) // a string always encodes
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("client: encode credentials: %w", err)
	}
	return b, nil
}

// deriveKey checks the encryption half of "connected" and derives the
// connection's message key from it.
func (c *Client) deriveKey(priv *ecdh.PrivateKey, d Connected) (*ecdh.Key, error) {
	if d.ServerPublicKey == "" || d.Salt == "" {
		return nil, fmt.Errorf("%w: connected has no serverPublicKey and salt: the server does not run the encryption handshake (server RequireEncryption and server/encryption's Pair)", ErrEncryptionHandshake)
	}
	serverKey, err := ecdh.ParsePublicKey(d.ServerPublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncryptionHandshake, err)
	}
	if c.pinned != nil && !c.pinned.Equal(serverKey) {
		return nil, fmt.Errorf("%w: got %s", ErrServerKeyMismatch, d.ServerPublicKey)
	}
	key, err := ecdh.DeriveKey(priv, d.ServerPublicKey, d.Salt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncryptionHandshake, err)
	}
	return key, nil
}

// encode builds the frame to send on cn. On an encrypted connection it is
// {"event":"encrypted","data":{"iv","ct"},"id"?}, sealing
// {"event","data"}: the id stays outside, where the server reads it (its
// replies carry theirs there too), as the JS client sends it.
func (cn *conn) encode(event string, data any, id string) ([]byte, error) {
	if cn.key == nil {
		return encode(event, data, id)
	}
	inner, err := encode(event, data, "")
	if err != nil {
		return nil, err
	}
	sealed, err := cn.key.Encrypt(inner, nil)
	if err != nil {
		return nil, fmt.Errorf("client: encrypt %q: %w", event, err)
	}
	return encode(protocol.EventEncrypted, sealed, id)
}

// unwrap turns a frame read on an encrypted connection into the frame to
// route: an "encrypted" envelope is opened (its id, room and offset, which
// travel outside the envelope, are kept unless the sealed frame has its
// own); a plaintext frame passes only if the server sends it in plaintext
// to encrypted clients too. Anything else is dropped (false): it did not
// come through the server's transformer.
func (cn *conn) unwrap(f Frame) (Frame, bool) {
	log := cn.c.log
	if f.Event != protocol.EventEncrypted {
		if plaintextOK(f.Event) {
			return f, true
		}
		log.Warn("plaintext frame on an encrypted connection dropped", zap.String("event", f.Event))
		return Frame{}, false
	}
	var sealed ecdh.Sealed
	if err := json.Unmarshal(f.Data, &sealed); err != nil {
		log.Warn("encrypted frame dropped: no iv and ct", zap.Error(err))
		return Frame{}, false
	}
	plain, err := cn.key.Decrypt(sealed, nil)
	if err != nil {
		log.Warn("encrypted frame dropped", zap.Error(err))
		return Frame{}, false
	}
	var inner Frame
	if err := json.Unmarshal(plain, &inner); err != nil || inner.Event == "" ||
		inner.Event == protocol.EventEncrypted || inner.Event == protocol.EventConnected {
		log.Warn("encrypted frame dropped: it does not hold an application frame", zap.String("event", inner.Event))
		return Frame{}, false
	}
	if inner.ID == "" {
		inner.ID = f.ID
	}
	if inner.Room == "" && inner.Offset == "" {
		inner.Room, inner.Offset = f.Room, f.Offset
	}
	return inner, true
}

// plaintextOK reports whether the server sends event in plaintext to
// encrypted clients: the protocol's own frames (the server's sendSystem),
// never an application frame.
func plaintextOK(event string) bool {
	switch event {
	case protocol.EventConnected, protocol.EventError, protocol.EventAck,
		protocol.EventSessionExpiring, protocol.EventRefreshed, protocol.EventHeartbeat,
		protocol.EventGap, protocol.EventRecovery:
		return true
	}
	return false
}
