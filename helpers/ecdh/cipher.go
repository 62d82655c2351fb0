package ecdh

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Sealed is one encrypted payload in wire form, {"iv": …, "ct": …}: IV is the
// standard base64 of the 12-byte IV and CT the standard base64 of the
// ciphertext with the 16-byte GCM tag appended.
type Sealed struct {
	IV string `json:"iv"`
	CT string `json:"ct"`
}

// Key is an AES-256-GCM message key shared with one client. It is safe for
// concurrent use. Use it for one connection only (see the package doc).
type Key struct {
	aead cipher.AEAD
}

// NewKeyFromBytes returns a Key for 32 raw key bytes. Servers get keys from
// [DeriveKey]; this exists for tests and interoperability checks.
func NewKeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), KeySize)
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, fmt.Errorf("ecdh: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ecdh: gcm: %w", err)
	}
	return &Key{aead: aead}, nil
}

// Encrypt seals plaintext under a fresh random IV. aad, which may be nil, is
// authenticated but not encrypted; Decrypt must be given the same aad.
func (k *Key) Encrypt(plaintext, aad []byte) (Sealed, error) {
	if k == nil || k.aead == nil {
		return Sealed{}, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	buf := make([]byte, IVSize, IVSize+len(plaintext)+TagSize)
	if _, err := rand.Read(buf); err != nil {
		return Sealed{}, fmt.Errorf("ecdh: read random iv: %w", err)
	}
	return k.seal(buf, plaintext, aad), nil
}

// sealWithIV is Encrypt with a chosen IV, for known-answer tests. Reusing an
// IV under one key breaks GCM, so nothing else may call it.
func (k *Key) sealWithIV(iv, plaintext, aad []byte) Sealed {
	buf := make([]byte, IVSize, IVSize+len(plaintext)+TagSize)
	copy(buf, iv)
	return k.seal(buf, plaintext, aad)
}

// seal encrypts under the IV in buf[:IVSize], appending to buf. Both fields
// are cut from one string: this runs once per message per encrypted client,
// and it keeps Encrypt at three allocations.
func (k *Key) seal(buf, plaintext, aad []byte) Sealed {
	buf = k.aead.Seal(buf, buf[:IVSize], plaintext, aad)
	ivLen := base64.StdEncoding.EncodedLen(IVSize)
	enc := make([]byte, 0, ivLen+base64.StdEncoding.EncodedLen(len(buf)-IVSize))
	enc = base64.StdEncoding.AppendEncode(enc, buf[:IVSize])
	enc = base64.StdEncoding.AppendEncode(enc, buf[IVSize:])
	s := string(enc)
	return Sealed{IV: s[:ivLen], CT: s[ivLen:]}
}

// Decrypt opens s with the aad it was sealed with. A malformed s yields an
// error wrapping [ErrInvalidSealed]; one that fails authentication (altered
// iv, ciphertext or tag, another key, other aad) an error wrapping
// [ErrDecrypt].
func (k *Key) Decrypt(s Sealed, aad []byte) ([]byte, error) {
	if k == nil || k.aead == nil {
		return nil, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	iv, err := decodeStd(s.IV, IVSize)
	if err != nil {
		return nil, fmt.Errorf("%w: iv: %w", ErrInvalidSealed, err)
	}
	ct, err := decodeStd(s.CT, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: ct: %w", ErrInvalidSealed, err)
	}
	if len(ct) < TagSize {
		return nil, fmt.Errorf("%w: ct: %d bytes, shorter than the %d-byte tag", ErrInvalidSealed, len(ct), TagSize)
	}
	pt, err := k.aead.Open(ct[:0], iv, ct, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// EncryptJSON encodes v with encoding/json and seals the result.
func (k *Key) EncryptJSON(v any, aad []byte) (Sealed, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Sealed{}, fmt.Errorf("ecdh: encode json: %w", err)
	}
	return k.Encrypt(b, aad)
}

// DecryptJSON opens s and decodes the plaintext into v with encoding/json.
func (k *Key) DecryptJSON(s Sealed, aad []byte, v any) error {
	b, err := k.Decrypt(s, aad)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("ecdh: decode json: %w", err)
	}
	return nil
}
