package ecdh

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sizes of the values on the wire, in bytes before base64.
const (
	// PublicKeySize is the length of a raw uncompressed P-256 point.
	PublicKeySize = 65
	// PrivateKeySize is the length of a P-256 private scalar.
	PrivateKeySize = 32
	// SaltSize is the length of the HKDF salt sent in the handshake.
	SaltSize = 32
	// KeySize is the length of the derived AES-256-GCM key.
	KeySize = 32
	// IVSize is the length of the per-message AES-GCM IV (nonce).
	IVSize = 12
	// TagSize is the length of the AES-GCM tag appended to the ciphertext.
	TagSize = 16
)

// Info is the HKDF info string that binds derived keys to this scheme and
// version. A browser client must use the same bytes.
const Info = "ignis-ecdh-p256-aes-256-gcm-v1"

// Errors returned by this package. Each is wrapped with detail, so test with
// errors.Is.
var (
	// ErrInvalidPublicKey reports a public key that is not the standard
	// base64 of an uncompressed point on P-256.
	ErrInvalidPublicKey = errors.New("ecdh: invalid public key")
	// ErrInvalidPrivateKey reports private key bytes that are not a valid
	// P-256 scalar.
	ErrInvalidPrivateKey = errors.New("ecdh: invalid private key")
	// ErrInvalidSalt reports a salt that is not the standard base64 of
	// exactly SaltSize bytes.
	ErrInvalidSalt = errors.New("ecdh: invalid salt")
	// ErrInvalidKey reports a missing key or key bytes of the wrong length.
	ErrInvalidKey = errors.New("ecdh: invalid key")
	// ErrInvalidSealed reports a sealed message whose iv or ct is malformed
	// (bad base64, wrong IV length, ciphertext shorter than the tag).
	ErrInvalidSealed = errors.New("ecdh: invalid sealed message")
	// ErrDecrypt reports a well-formed sealed message that does not
	// authenticate: it was altered, or the key or AAD differs.
	ErrDecrypt = errors.New("ecdh: message authentication failed")
)

// PrivateKey is a P-256 key pair. It is safe for concurrent use.
type PrivateKey struct {
	k *ecdh.PrivateKey
}

// GenerateKey returns a new random P-256 key pair.
func GenerateKey() (*PrivateKey, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ecdh: generate key: %w", err)
	}
	return &PrivateKey{k: k}, nil
}

// NewPrivateKeyFromBytes returns the key pair for a 32-byte big-endian P-256
// scalar, as returned by [PrivateKey.Bytes]. Use it to keep one server key
// across restarts and instances, which clients need in order to pin it.
func NewPrivateKeyFromBytes(b []byte) (*PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPrivateKey, len(b), PrivateKeySize)
	}
	k, err := ecdh.P256().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: scalar is zero or not below the group order", ErrInvalidPrivateKey)
	}
	return &PrivateKey{k: k}, nil
}

// Bytes returns a copy of the 32-byte big-endian private scalar. It is
// secret: store it like a password, never log it.
func (p *PrivateKey) Bytes() []byte {
	return p.k.Bytes()
}

// PublicKey returns the public half of the key pair.
func (p *PrivateKey) PublicKey() *PublicKey {
	return &PublicKey{k: p.k.PublicKey()}
}

// PublicKeyBase64 returns the public key in wire form: the standard padded
// base64 of the uncompressed point, 88 characters.
func (p *PrivateKey) PublicKeyBase64() string {
	return base64.StdEncoding.EncodeToString(p.k.PublicKey().Bytes())
}

// SharedSecret returns the 32-byte X coordinate of the ECDH product with
// peer, the value WebCrypto deriveBits(…, 256) returns. Most callers want
// [DeriveKey] instead; the raw secret must never be used as a key directly.
func (p *PrivateKey) SharedSecret(peer *PublicKey) ([]byte, error) {
	if p == nil || p.k == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrInvalidPrivateKey)
	}
	if peer == nil || peer.k == nil {
		return nil, fmt.Errorf("%w: nil public key", ErrInvalidPublicKey)
	}
	s, err := p.k.ECDH(peer.k)
	if err != nil {
		// Unreachable for P-256 keys that passed validation; kept so a
		// future curve change cannot turn into a panic or a zero secret.
		return nil, fmt.Errorf("ecdh: key agreement: %w", err)
	}
	return s, nil
}

// PublicKey is a validated P-256 public key.
type PublicKey struct {
	k *ecdh.PublicKey
}

// ParsePublicKey decodes a public key in wire form. It accepts exactly the
// standard padded base64 of a 65-byte uncompressed point (0x04‖X‖Y) that lies
// on P-256, and returns an error wrapping [ErrInvalidPublicKey] otherwise.
func ParsePublicKey(b64 string) (*PublicKey, error) {
	raw, err := decodeStd(b64, PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPublicKey, err)
	}
	if raw[0] != 0x04 {
		return nil, fmt.Errorf("%w: first byte is 0x%02x, want 0x04 (uncompressed point)", ErrInvalidPublicKey, raw[0])
	}
	k, err := ecdh.P256().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: point is not on the P-256 curve", ErrInvalidPublicKey)
	}
	return &PublicKey{k: k}, nil
}

// Bytes returns a copy of the 65-byte uncompressed point.
func (k *PublicKey) Bytes() []byte {
	return k.k.Bytes()
}

// Base64 returns the public key in wire form, 88 characters.
func (k *PublicKey) Base64() string {
	return base64.StdEncoding.EncodeToString(k.k.Bytes())
}

// Equal reports whether k and other are the same public key.
func (k *PublicKey) Equal(other *PublicKey) bool {
	if k == nil || other == nil {
		return k == other
	}
	return k.k.Equal(other.k)
}

// NewSalt returns SaltSize random bytes in standard base64, to send to the
// client with the server public key. Use a fresh salt for every handshake.
func NewSalt() (string, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("ecdh: read random salt: %w", err)
	}
	return base64.StdEncoding.EncodeToString(salt), nil
}

// DeriveKey computes the message key shared with the owner of peerPublicB64:
// ECDH on P-256, then HKDF-SHA-256 with the decoded salt and [Info]. The
// browser computes the same key from its private key, the server public key
// and the same salt. Bad input yields an error wrapping [ErrInvalidPublicKey]
// or [ErrInvalidSalt].
func DeriveKey(priv *PrivateKey, peerPublicB64, saltB64 string) (*Key, error) {
	raw, err := deriveKeyBytes(priv, peerPublicB64, saltB64)
	if err != nil {
		return nil, err
	}
	return NewKeyFromBytes(raw)
}

// deriveKeyBytes is DeriveKey without the AES setup, so tests can compare the
// raw key with the one WebCrypto exports.
func deriveKeyBytes(priv *PrivateKey, peerPublicB64, saltB64 string) ([]byte, error) {
	if priv == nil || priv.k == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrInvalidPrivateKey)
	}
	peer, err := ParsePublicKey(peerPublicB64)
	if err != nil {
		return nil, err
	}
	salt, err := decodeStd(saltB64, SaltSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSalt, err)
	}
	secret, err := priv.SharedSecret(peer)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, secret, salt, Info, KeySize)
	if err != nil {
		return nil, fmt.Errorf("ecdh: hkdf: %w", err)
	}
	return key, nil
}

// decodeStd decodes standard padded base64 and, when want > 0, requires
// exactly want bytes. Its errors carry the detail only; callers add the
// sentinel. encoding/base64 alone is not strict enough: even in Strict mode
// it skips CR and LF, and its errors do not say what was wrong.
func decodeStd(s string, want int) ([]byte, error) {
	switch {
	case s == "":
		return nil, errors.New("empty string")
	case strings.ContainsAny(s, " \t\r\n\v\f"):
		return nil, errors.New("contains whitespace")
	case strings.ContainsAny(s, "-_"):
		return nil, errors.New("uses the URL-safe base64 alphabet, want standard base64 (+ and /)")
	}
	if want > 0 {
		if wantLen := base64.StdEncoding.EncodedLen(want); len(s) != wantLen {
			if len(s) == base64.RawStdEncoding.EncodedLen(want) && !strings.HasSuffix(s, "=") {
				return nil, errors.New("unpadded base64, want standard padded base64")
			}
			return nil, fmt.Errorf("%d base64 characters, want %d (%d bytes)", len(s), wantLen, want)
		}
	} else if len(s)%4 != 0 {
		if !strings.HasSuffix(s, "=") {
			return nil, errors.New("unpadded or truncated base64, want standard padded base64")
		}
		return nil, fmt.Errorf("%d base64 characters, not a multiple of 4", len(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		// CorruptInputError gives the offending offset, which is all the
		// detail worth passing on; the input itself may be secret.
		return nil, fmt.Errorf("not standard base64: %w", err)
	}
	if want > 0 && len(b) != want {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), want)
	}
	return b, nil
}
