package encryption_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
	"github.com/ignis-go/wscomponent/server/encryption"
)

// pairWithClient returns a Pair that has completed a handshake for client
// "c" and the key that client derived.
func pairWithClient(tb testing.TB) (*encryption.Pair, *ecdh.Key) {
	tb.Helper()
	pair := newPair(tb, encryption.Options{})
	client, err := ecdh.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	data, _ := json.Marshal(map[string]string{"publicKey": client.PublicKeyBase64()})
	hs, err := pair.Handshake()(context.Background(), server.HandshakeRequest{ClientID: "c", Data: data})
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ecdh.DeriveKey(client, hs.ServerPublicKey, hs.Salt)
	if err != nil {
		tb.Fatal(err)
	}
	return pair, key
}

// FuzzInbound drives the inbound transformer three ways: data as the raw
// "data" of an encrypted frame (the envelope and base64 decoding), plain
// sealed with the client's key (decoding of the decrypted frame, checked
// against an independent reading of the JSON), and that sealed frame with
// the bit flip selects flipped (must not authenticate).
func FuzzInbound(f *testing.F) {
	pair, key := pairWithClient(f)
	inbound := pair.Inbound()
	call := func(data []byte) (*protocol.Message, error) {
		return inbound(context.Background(), server.InboundRequest{Client: server.ClientInfo{ID: "c"}, Data: data})
	}
	f.Fuzz(func(t *testing.T, data, plain []byte, flip uint16) {
		// 1. Arbitrary envelope: only the package's errors, never a
		// panic; a success (astronomically unlikely) must be a frame.
		if msg, err := call(data); err != nil {
			checkInboundError(t, err)
		} else if msg == nil || msg.Event == "" {
			t.Fatalf("success without a frame: %+v", msg)
		}

		// 2. A well-formed envelope around arbitrary plaintext.
		sealed, err := key.Encrypt(plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := json.Marshal(sealed)
		msg, err := call(env)
		want, ok := readFrame(plain)
		switch {
		case ok && err != nil:
			t.Fatalf("plaintext %q is a frame, got error %v", plain, err)
		case !ok && err == nil:
			t.Fatalf("plaintext %q is not a frame, got %+v", plain, msg)
		case err != nil:
			if !errors.Is(err, encryption.ErrInvalidFrame) {
				t.Fatalf("plaintext %q: error %v, want ErrInvalidFrame", plain, err)
			}
		default:
			if msg.Event != want.Event || msg.ID != want.ID || !sameJSON(msg.Data, want.Data) {
				t.Fatalf("plaintext %q: got %+v, want %+v", plain, msg, want)
			}
		}

		// 3. One flipped bit anywhere in iv or ct must not authenticate.
		iv, _ := base64.StdEncoding.DecodeString(sealed.IV)
		ct, _ := base64.StdEncoding.DecodeString(sealed.CT)
		raw := append(iv, ct...)
		bit := int(flip) % (len(raw) * 8)
		raw[bit/8] ^= 1 << (bit % 8)
		tampered := ecdh.Sealed{
			IV: base64.StdEncoding.EncodeToString(raw[:ecdh.IVSize]),
			CT: base64.StdEncoding.EncodeToString(raw[ecdh.IVSize:]),
		}
		env, _ = json.Marshal(tampered)
		if msg, err := call(env); !errors.Is(err, ecdh.ErrDecrypt) {
			t.Fatalf("bit %d flipped: got %+v, %v; want ErrDecrypt", bit, msg, err)
		}
	})
}

func checkInboundError(t *testing.T, err error) {
	t.Helper()
	for _, want := range []error{encryption.ErrInvalidFrame, ecdh.ErrInvalidSealed, ecdh.ErrDecrypt} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("unexpected error %v", err)
}

// readFrame is the reference reading of a decrypted frame, written
// independently of the package: a UTF-8 JSON object whose "event" is a
// non-empty string; "data" is any value; a string "id" is kept.
func readFrame(plain []byte) (protocol.Message, bool) {
	var m protocol.Message
	if !utf8.Valid(plain) {
		return m, false
	}
	v, ok := decodeNumbers(plain)
	if !ok {
		return m, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return m, false
	}
	ev, ok := obj["event"].(string)
	if !ok || ev == "" {
		return m, false
	}
	m.Event = ev
	if id, ok := obj["id"].(string); ok {
		m.ID = id
	}
	if d, ok := obj["data"]; ok {
		m.Data, _ = json.Marshal(d)
	}
	return m, true
}

// sameJSON compares two JSON values by meaning; nil is absent.
func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	x, okx := decodeNumbers(a)
	y, oky := decodeNumbers(b)
	if !okx || !oky {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// decodeNumbers decodes one JSON value keeping numbers as written, so that
// numbers out of float64 range (valid JSON) do not fail the decoding.
func decodeNumbers(b []byte) (any, bool) {
	if !json.Valid(b) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	return v, dec.Decode(&v) == nil
}
