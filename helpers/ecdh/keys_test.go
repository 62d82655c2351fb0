package ecdh

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// mustKeyPair returns a fresh key pair or stops the test.
func mustKeyPair(tb testing.TB) *PrivateKey {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatalf("GenerateKey: %v", err)
	}
	return k
}

// mustSalt returns a fresh salt or stops the test.
func mustSalt(tb testing.TB) string {
	tb.Helper()
	s, err := NewSalt()
	if err != nil {
		tb.Fatalf("NewSalt: %v", err)
	}
	return s
}

// mustHex decodes a hex constant or stops the test.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex constant %q: %v", s, err)
	}
	return b
}

// checkErr asserts that err wraps want and mentions detail; a nil want means
// no error is expected.
func checkErr(tb testing.TB, err, want error, detail string) {
	tb.Helper()
	if want == nil {
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		tb.Fatalf("got no error, want %v (%s)", want, detail)
	}
	if !errors.Is(err, want) {
		tb.Fatalf("error %q does not wrap %q", err, want)
	}
	if !strings.HasPrefix(err.Error(), "ecdh: ") {
		tb.Fatalf("error %q lacks the package prefix", err)
	}
	if !strings.Contains(err.Error(), detail) {
		tb.Fatalf("error %q does not mention %q", err, detail)
	}
}

func TestGenerateKey(t *testing.T) {
	priv := mustKeyPair(t)

	pub := priv.PublicKeyBase64()
	if len(pub) != 88 {
		t.Fatalf("public key is %d characters, want 88", len(pub))
	}
	raw, err := base64.StdEncoding.DecodeString(pub)
	if err != nil || len(raw) != PublicKeySize || raw[0] != 0x04 {
		t.Fatalf("public key %q is not base64 of a 65-byte uncompressed point (err %v)", pub, err)
	}

	parsed, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatalf("ParsePublicKey(own key): %v", err)
	}
	if !parsed.Equal(priv.PublicKey()) {
		t.Fatal("parsed public key differs from the generated one")
	}
	if parsed.Base64() != pub || !bytes.Equal(parsed.Bytes(), raw) {
		t.Fatal("PublicKey.Base64/Bytes do not round-trip")
	}

	again, err := NewPrivateKeyFromBytes(priv.Bytes())
	if err != nil {
		t.Fatalf("NewPrivateKeyFromBytes(Bytes()): %v", err)
	}
	if again.PublicKeyBase64() != pub {
		t.Fatal("private key does not round-trip through Bytes")
	}

	if other := mustKeyPair(t); other.PublicKey().Equal(priv.PublicKey()) {
		t.Fatal("two generated keys are equal")
	}
}

func TestPublicKeyEqualNil(t *testing.T) {
	pub := mustKeyPair(t).PublicKey()
	var none *PublicKey
	if pub.Equal(nil) || none.Equal(pub) || !none.Equal(nil) {
		t.Fatal("Equal mishandles nil")
	}
}

func TestNewPrivateKeyFromBytesInvalid(t *testing.T) {
	tests := []struct {
		name   string
		give   []byte
		detail string
	}{
		{"nil", nil, "0 bytes, want 32"},
		{"short", make([]byte, 31), "31 bytes, want 32"},
		{"long", make([]byte, 33), "33 bytes, want 32"},
		{"zero", make([]byte, 32), "not below the group order"},
		{"group order", mustHex(t, "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"), "not below the group order"},
		{"all ones", bytes.Repeat([]byte{0xff}, 32), "not below the group order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewPrivateKeyFromBytes(tt.give)
			checkErr(t, err, ErrInvalidPrivateKey, tt.detail)
			if k != nil {
				t.Fatal("got a key with the error")
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	// katServerPublic contains '+', so its URL-safe form contains '-'.
	valid := katServerPublic
	raw, err := base64.StdEncoding.DecodeString(valid)
	if err != nil {
		t.Fatal(err)
	}
	withRaw := func(edit func(b []byte) []byte) string {
		b := edit(bytes.Clone(raw))
		return base64.StdEncoding.EncodeToString(b)
	}
	// Setting a padding bit leaves the length and alphabet alone; only a
	// strict decoder notices.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	paddingBitSet := valid[:86] + string(alphabet[strings.IndexByte(alphabet, valid[86])|1]) + "="

	tests := []struct {
		name   string
		give   string
		want   error
		detail string
	}{
		{name: "valid", give: valid},
		{name: "empty", give: "", want: ErrInvalidPublicKey, detail: "empty string"},
		{name: "url-safe alphabet", give: base64.URLEncoding.EncodeToString(raw), want: ErrInvalidPublicKey, detail: "URL-safe"},
		{name: "unpadded", give: strings.TrimRight(valid, "="), want: ErrInvalidPublicKey, detail: "unpadded"},
		{name: "url-safe unpadded", give: base64.RawURLEncoding.EncodeToString(raw), want: ErrInvalidPublicKey, detail: "URL-safe"},
		{name: "leading space", give: " " + valid, want: ErrInvalidPublicKey, detail: "whitespace"},
		{name: "trailing newline", give: valid + "\n", want: ErrInvalidPublicKey, detail: "whitespace"},
		{name: "inner newline", give: valid[:40] + "\n" + valid[40:], want: ErrInvalidPublicKey, detail: "whitespace"},
		{name: "inner CRLF replacing chars", give: valid[:40] + "\r\n" + valid[42:], want: ErrInvalidPublicKey, detail: "whitespace"},
		{name: "tab", give: valid[:10] + "\t" + valid[11:], want: ErrInvalidPublicKey, detail: "whitespace"},
		{name: "illegal character", give: valid[:10] + "*" + valid[11:], want: ErrInvalidPublicKey, detail: "not standard base64"},
		{name: "non-ascii", give: valid[:85] + "é=", want: ErrInvalidPublicKey, detail: "not standard base64"},
		{name: "padding in the middle", give: valid[:40] + "=" + valid[41:], want: ErrInvalidPublicKey, detail: "not standard base64"},
		{name: "nonzero padding bits", give: paddingBitSet, want: ErrInvalidPublicKey, detail: "not standard base64"},
		{name: "too short", give: valid[:84], want: ErrInvalidPublicKey, detail: "84 base64 characters, want 88"},
		{name: "too long", give: valid + "AAAA", want: ErrInvalidPublicKey, detail: "92 base64 characters, want 88"},
		{name: "64 bytes (no prefix)", give: withRaw(func(b []byte) []byte { return b[1:] }), want: ErrInvalidPublicKey, detail: "decodes to 64 bytes, want 65"},
		{name: "66 bytes", give: withRaw(func(b []byte) []byte { return append(b, 0) }), want: ErrInvalidPublicKey, detail: "decodes to 66 bytes, want 65"},
		{name: "compressed point", give: withRaw(func(b []byte) []byte { return append([]byte{0x02 | b[64]&1}, b[1:33]...) }), want: ErrInvalidPublicKey, detail: "44 base64 characters, want 88"},
		{name: "prefix 0x02", give: withRaw(func(b []byte) []byte { b[0] = 0x02; return b }), want: ErrInvalidPublicKey, detail: "first byte is 0x02"},
		{name: "prefix 0x00", give: withRaw(func(b []byte) []byte { b[0] = 0x00; return b }), want: ErrInvalidPublicKey, detail: "first byte is 0x00"},
		{name: "prefix 0x06 (hybrid)", give: withRaw(func(b []byte) []byte { b[0] = 0x06; return b }), want: ErrInvalidPublicKey, detail: "first byte is 0x06"},
		{name: "point off the curve", give: withRaw(func(b []byte) []byte { b[64] ^= 1; return b }), want: ErrInvalidPublicKey, detail: "not on the P-256 curve"},
		{name: "all-zero coordinates", give: withRaw(func(b []byte) []byte { clear(b[1:]); return b }), want: ErrInvalidPublicKey, detail: "not on the P-256 curve"},
		{name: "coordinates above the field prime", give: withRaw(func(b []byte) []byte {
			for i := 1; i < len(b); i++ {
				b[i] = 0xff
			}
			return b
		}), want: ErrInvalidPublicKey, detail: "not on the P-256 curve"},
		{name: "huge input", give: strings.Repeat("A", 1<<20), want: ErrInvalidPublicKey, detail: "want 88"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.give)
			checkErr(t, err, tt.want, tt.detail)
			if tt.want != nil {
				if got != nil {
					t.Fatal("got a key with the error")
				}
				return
			}
			if got.Base64() != tt.give {
				t.Fatalf("Base64() = %q, want %q", got.Base64(), tt.give)
			}
		})
	}
}

func TestNewSalt(t *testing.T) {
	a, b := mustSalt(t), mustSalt(t)
	if a == b {
		t.Fatal("two salts are equal")
	}
	for _, s := range []string{a, b} {
		raw, err := decodeStd(s, SaltSize)
		if err != nil || len(s) != 44 || len(raw) != SaltSize {
			t.Fatalf("salt %q: %d characters, err %v; want 44 characters of standard base64", s, len(s), err)
		}
	}
}

func TestDeriveKeyAgreement(t *testing.T) {
	server, client := mustKeyPair(t), mustKeyPair(t)
	salt := mustSalt(t)

	serverKey, err := DeriveKey(server, client.PublicKeyBase64(), salt)
	if err != nil {
		t.Fatalf("server DeriveKey: %v", err)
	}
	clientKey, err := DeriveKey(client, server.PublicKeyBase64(), salt)
	if err != nil {
		t.Fatalf("client DeriveKey: %v", err)
	}
	sealed, err := serverKey.Encrypt([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clientKey.Decrypt(sealed, nil)
	if err != nil || string(got) != "hello" {
		t.Fatalf("client Decrypt = %q, %v; want hello", got, err)
	}

	s1, err := server.SharedSecret(client.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := client.SharedSecret(server.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 32 || !bytes.Equal(s1, s2) {
		t.Fatalf("shared secrets differ or are not 32 bytes: %x / %x", s1, s2)
	}

	// Another salt must give another key.
	otherKey, err := DeriveKey(client, server.PublicKeyBase64(), mustSalt(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherKey.Decrypt(sealed, nil); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("decrypt under a key from another salt: err %v, want ErrDecrypt", err)
	}
}

func TestDeriveKeyInvalid(t *testing.T) {
	priv := mustKeyPair(t)
	peer := mustKeyPair(t).PublicKeyBase64()
	salt := mustSalt(t)
	saltRaw, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString
	// A salt that contains '+' or '/' so its URL-safe form differs.
	urlSalt := base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16))

	tests := []struct {
		name   string
		priv   *PrivateKey
		peer   string
		salt   string
		want   error
		detail string
	}{
		{name: "valid", priv: priv, peer: peer, salt: salt},
		{name: "nil private key", priv: nil, peer: peer, salt: salt, want: ErrInvalidPrivateKey, detail: "nil private key"},
		{name: "zero private key", priv: &PrivateKey{}, peer: peer, salt: salt, want: ErrInvalidPrivateKey, detail: "nil private key"},
		{name: "bad peer key", priv: priv, peer: peer[:87], salt: salt, want: ErrInvalidPublicKey, detail: "unpadded"},
		{name: "empty salt", priv: priv, peer: peer, salt: "", want: ErrInvalidSalt, detail: "empty string"},
		{name: "16-byte salt", priv: priv, peer: peer, salt: enc(saltRaw[:16]), want: ErrInvalidSalt, detail: "24 base64 characters, want 44"},
		{name: "31-byte salt", priv: priv, peer: peer, salt: enc(saltRaw[:31]), want: ErrInvalidSalt, detail: "decodes to 31 bytes, want 32"},
		{name: "33-byte salt", priv: priv, peer: peer, salt: enc(append(bytes.Clone(saltRaw), 0)), want: ErrInvalidSalt, detail: "decodes to 33 bytes, want 32"},
		{name: "unpadded salt", priv: priv, peer: peer, salt: strings.TrimRight(salt, "="), want: ErrInvalidSalt, detail: "unpadded"},
		{name: "url-safe salt", priv: priv, peer: peer, salt: urlSalt, want: ErrInvalidSalt, detail: "URL-safe"},
		{name: "salt with newline", priv: priv, peer: peer, salt: salt[:20] + "\n" + salt[20:], want: ErrInvalidSalt, detail: "whitespace"},
		{name: "salt not base64", priv: priv, peer: peer, salt: strings.Repeat("!", 44), want: ErrInvalidSalt, detail: "not standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := DeriveKey(tt.priv, tt.peer, tt.salt)
			checkErr(t, err, tt.want, tt.detail)
			if (k == nil) != (tt.want != nil) {
				t.Fatalf("key %v with error %v", k, err)
			}
		})
	}
}

func TestSharedSecretNil(t *testing.T) {
	priv := mustKeyPair(t)
	if _, err := priv.SharedSecret(nil); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("SharedSecret(nil): %v, want ErrInvalidPublicKey", err)
	}
	var none *PrivateKey
	if _, err := none.SharedSecret(priv.PublicKey()); !errors.Is(err, ErrInvalidPrivateKey) {
		t.Fatalf("nil.SharedSecret: %v, want ErrInvalidPrivateKey", err)
	}
}
