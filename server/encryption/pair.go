package encryption

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
	"github.com/ignis-go/wscomponent/helpers/protocol"
	"github.com/ignis-go/wscomponent/server"
)

// Errors returned by the Pair's callbacks, each wrapped with detail; test
// with errors.Is. The server logs them and answers the client as the
// protocol says: a failed handshake closes it with 4004, a failed outbound
// transform drops that message for that client, a failed inbound transform
// answers "Invalid message format".
var (
	// ErrNoPublicKey: the authenticate payload is not a JSON object with a
	// string "publicKey". A publicKey that is a string but not a valid key
	// yields an error wrapping ecdh.ErrInvalidPublicKey instead.
	ErrNoPublicKey = errors.New("encryption: authenticate data has no publicKey string")
	// ErrNoKey: there is no key for the client (no handshake yet, or it has
	// disconnected).
	ErrNoKey = errors.New("encryption: no key for client")
	// ErrInvalidFrame: an inbound "encrypted" frame is not {"iv": string,
	// "ct": string}, or its plaintext is not a UTF-8 JSON object with a
	// non-empty string "event". Undecryptable frames wrap ecdh.ErrDecrypt or
	// ecdh.ErrInvalidSealed instead.
	ErrInvalidFrame = errors.New("encryption: invalid encrypted frame")
)

// Options configures a Pair. Every field is optional.
type Options struct {
	// PrivateKey is the server's key pair. Default: a new random key, which
	// changes at every start; give a fixed key (ecdh.NewPrivateKeyFromBytes)
	// to every instance when clients pin the server public key.
	PrivateKey *ecdh.PrivateKey
	// AAD returns the additional authenticated data for a client's messages,
	// used in both directions. Default: none. The browser client must be
	// given the same bytes (its additionalData option).
	AAD func(clientID string) []byte
	// Logger receives debug logs about keys (never key material or
	// payloads), named "encryption". Default: a no-op logger.
	Logger *zap.Logger
}

// Pair is the ready-made handshake and transformer pair for the server
// helper. It is safe for concurrent use; one Pair serves one Helper (client
// ids are the keys of its store).
type Pair struct {
	priv      *ecdh.PrivateKey
	publicB64 string
	aad       func(string) []byte
	log       *zap.Logger
	keys      ecdh.KeyStore
}

// New returns a Pair. It fails only when no server key can be generated.
func New(opts Options) (*Pair, error) {
	priv := opts.PrivateKey
	if priv == nil {
		var err error
		if priv, err = ecdh.GenerateKey(); err != nil {
			return nil, fmt.Errorf("encryption: %w", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Pair{
		priv:      priv,
		publicB64: priv.PublicKeyBase64(),
		aad:       opts.AAD,
		log:       log.Named("encryption"),
	}, nil
}

// ServerPublicKey returns the server public key as it goes on the wire
// (standard base64 of the raw point, 88 characters), for clients that pin it.
func (p *Pair) ServerPublicKey() string { return p.publicB64 }

// Len returns the number of clients with a stored key.
func (p *Pair) Len() int { return p.keys.Len() }

// Apply binds the Pair into opts: Handshake, OutboundTransformer and
// InboundTransformer are set (replacing what was there), ClientDisconnected
// is wrapped so keys are dropped before the application's callback runs,
// and RequireEncryption is turned on. Call it once per Options.
func (p *Pair) Apply(opts *server.Options) {
	opts.Handshake = p.Handshake()
	opts.OutboundTransformer = p.Outbound()
	opts.InboundTransformer = p.Inbound()
	opts.ClientDisconnected = p.WrapDisconnected(opts.ClientDisconnected)
	opts.RequireEncryption = true
}

// Handshake returns the server.HandshakeFunc: it reads the client's
// "publicKey" from the authenticate payload (which must be a JSON object,
// the key a string in the strict wire form) and runs [Pair.Exchange]. A
// missing or invalid key is an error, which rejects the client.
func (p *Pair) Handshake() server.HandshakeFunc {
	return func(ctx context.Context, req server.HandshakeRequest) (*server.HandshakeResult, error) {
		pub, err := publicKeyOf(req.Data)
		if err != nil {
			return nil, err
		}
		return p.Exchange(ctx, req.ClientID, pub)
	}
}

// publicKeyOf extracts the "publicKey" string of an authenticate payload.
// A map, not a struct, because encoding/json matches struct fields without
// regard to case and the wire name is exact.
func publicKeyOf(data json.RawMessage) (string, error) {
	var fields map[string]json.RawMessage
	if !isObject(data) || json.Unmarshal(data, &fields) != nil {
		return "", fmt.Errorf("%w: payload is not a JSON object", ErrNoPublicKey)
	}
	raw, ok := fields["publicKey"]
	if !ok {
		return "", ErrNoPublicKey
	}
	var pub string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &pub) != nil {
		return "", fmt.Errorf("%w: publicKey is not a string", ErrNoPublicKey)
	}
	return pub, nil
}

// Exchange derives the key shared with the client that owns
// clientPublicKey, under a fresh salt, stores it under clientID (replacing
// an earlier one) and returns what the client needs to derive it too. ctx
// is the client's: when it is done, nothing is stored, since the
// disconnect that would drop the key may already have happened.
//
// Handshake calls it; call it directly only for optional encryption (see the
// package doc).
func (p *Pair) Exchange(ctx context.Context, clientID, clientPublicKey string) (*server.HandshakeResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("encryption: handshake abandoned: %w", err)
	}
	salt, err := ecdh.NewSalt()
	if err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	key, err := ecdh.DeriveKey(p.priv, clientPublicKey, salt)
	if err != nil {
		return nil, fmt.Errorf("encryption: client key: %w", err)
	}
	p.keys.Set(clientID, key)
	// The server cancels ctx before it calls ClientDisconnected, so either
	// the check below sees the cancellation or the callback's Forget comes
	// after the Set above: a key cannot outlive its connection either way.
	if err := ctx.Err(); err != nil {
		p.keys.Delete(clientID)
		return nil, fmt.Errorf("encryption: handshake abandoned: %w", err)
	}
	if ce := p.log.Check(zap.DebugLevel, "client key stored"); ce != nil {
		ce.Write(zap.String("client_id", clientID))
	}
	return &server.HandshakeResult{ServerPublicKey: p.publicB64, Salt: salt}, nil
}

// Forget drops the key of clientID; forgetting an unknown id does nothing.
func (p *Pair) Forget(clientID string) {
	p.keys.Delete(clientID)
	if ce := p.log.Check(zap.DebugLevel, "client key dropped"); ce != nil {
		ce.Write(zap.String("client_id", clientID))
	}
}

// WrapDisconnected returns a server.ClientDisconnectedFunc that drops the
// client's key and then calls next, which may be nil.
func (p *Pair) WrapDisconnected(next server.ClientDisconnectedFunc) server.ClientDisconnectedFunc {
	return func(ctx context.Context, ev server.ClientDisconnectedEvent) error {
		p.Forget(ev.ClientID)
		if next == nil {
			return nil
		}
		return next(ctx, ev)
	}
}

// Outbound returns the server.OutboundTransformer: it seals the frame
// {"event":…,"data":…} (data exactly as the server gives it) with the
// client's key and returns it as {"event":"encrypted","data":{"iv","ct"}}.
// Without a key for the client it returns an error wrapping [ErrNoKey], so
// the message is dropped for that client rather than sent in plaintext.
func (p *Pair) Outbound() server.OutboundTransformer {
	return func(_ context.Context, req server.OutboundRequest) (*server.OutboundResult, error) {
		key, ok := p.keys.Get(req.Client.ID)
		if !ok {
			return nil, ErrNoKey
		}
		sealed, err := key.Encrypt(innerFrame(req.Event, req.Data), p.aadFor(req.Client.ID))
		if err != nil {
			return nil, err
		}
		return &server.OutboundResult{Event: protocol.EventEncrypted, Data: sealed}, nil
	}
}

// innerFrame builds {"event":<event>,"data":<data>}. data comes from the
// server, which has validated it; nil data is written as null.
func innerFrame(event string, data json.RawMessage) []byte {
	ev, _ := json.Marshal(event) // a string always encodes
	if data == nil {
		data = json.RawMessage("null")
	}
	b := make([]byte, 0, len(`{"event":,"data":}`)+len(ev)+len(data))
	b = append(b, `{"event":`...)
	b = append(b, ev...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// Inbound returns the server.InboundTransformer: it opens the {"iv","ct"}
// data of an "encrypted" frame with the client's key and decodes the
// plaintext as a frame, {"event": string, "data"?: any, "id"?: string}.
// Every failure is an error, which the server answers with "Invalid message
// format".
func (p *Pair) Inbound() server.InboundTransformer {
	return func(_ context.Context, req server.InboundRequest) (*protocol.Message, error) {
		return p.open(req.Client.ID, req.Data)
	}
}

func (p *Pair) open(clientID string, data json.RawMessage) (*protocol.Message, error) {
	sealed, err := sealedOf(data)
	if err != nil {
		return nil, err
	}
	key, ok := p.keys.Get(clientID)
	if !ok {
		return nil, ErrNoKey
	}
	plain, err := key.Decrypt(sealed, p.aadFor(clientID))
	if err != nil {
		return nil, err
	}
	return frameOf(plain)
}

// sealedOf decodes {"iv": string, "ct": string}; other members are ignored.
func sealedOf(data json.RawMessage) (ecdh.Sealed, error) {
	var s ecdh.Sealed
	var fields map[string]json.RawMessage
	if !isObject(data) || json.Unmarshal(data, &fields) != nil {
		return s, fmt.Errorf("%w: data is not a JSON object", ErrInvalidFrame)
	}
	if !stringField(fields, "iv", &s.IV) || !stringField(fields, "ct", &s.CT) {
		return s, fmt.Errorf("%w: iv and ct must be strings", ErrInvalidFrame)
	}
	return s, nil
}

// frameOf decodes a decrypted frame with the rules the server applies to
// plaintext frames, except that member names are exact and a frame without
// an event is an error (the server cannot drop it silently once it came
// through a transformer).
func frameOf(plain []byte) (*protocol.Message, error) {
	var fields map[string]json.RawMessage
	if !utf8.Valid(plain) || !isObject(plain) || json.Unmarshal(plain, &fields) != nil {
		return nil, fmt.Errorf("%w: plaintext is not a JSON object", ErrInvalidFrame)
	}
	var m protocol.Message
	if !stringField(fields, "event", &m.Event) || m.Event == "" {
		return nil, fmt.Errorf("%w: plaintext has no event string", ErrInvalidFrame)
	}
	if d, ok := fields["data"]; ok {
		m.Data = d
	}
	_ = stringField(fields, "id", &m.ID) // a non-string id is ignored, as for plaintext frames
	return &m, nil
}

// stringField decodes fields[name] into dst when it is a JSON string.
func stringField(fields map[string]json.RawMessage, name string, dst *string) bool {
	raw, ok := fields[name]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return false
	}
	return json.Unmarshal(raw, dst) == nil
}

// isObject reports whether b, after leading white space, starts an object:
// json.Unmarshal into a map accepts null as well.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func (p *Pair) aadFor(clientID string) []byte {
	if p.aad == nil {
		return nil
	}
	return p.aad(clientID)
}
