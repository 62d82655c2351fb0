package ecdh

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// mustKey returns a Key for fixed or random bytes or stops the test.
func mustKey(tb testing.TB, raw []byte) *Key {
	tb.Helper()
	k, err := NewKeyFromBytes(raw)
	if err != nil {
		tb.Fatalf("NewKeyFromBytes: %v", err)
	}
	return k
}

// randomKey returns a Key derived from two fresh key pairs.
func randomKey(tb testing.TB) *Key {
	tb.Helper()
	k, err := DeriveKey(mustKeyPair(tb), mustKeyPair(tb).PublicKeyBase64(), mustSalt(tb))
	if err != nil {
		tb.Fatalf("DeriveKey: %v", err)
	}
	return k
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	key := randomKey(t)
	tests := []struct {
		name string
		give []byte
		aad  []byte
	}{
		{"empty, no aad", nil, nil},
		{"empty, aad", []byte{}, []byte("client-1")},
		{"json, no aad", []byte(`{"event":"chat","data":"hi"}`), nil},
		{"json, aad", []byte(`{"event":"chat","data":"héllo ✓"}`), []byte("client-1")},
		{"binary", bytes.Repeat([]byte{0, 0xff, 0x80}, 1000), []byte{0}},
		{"one byte", []byte{42}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := key.Encrypt(tt.give, tt.aad)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			iv, err := decodeStd(sealed.IV, IVSize)
			if err != nil {
				t.Fatalf("iv %q: %v", sealed.IV, err)
			}
			ct, err := decodeStd(sealed.CT, 0)
			if err != nil {
				t.Fatalf("ct %q: %v", sealed.CT, err)
			}
			if len(iv) != IVSize || len(ct) != len(tt.give)+TagSize {
				t.Fatalf("iv %d bytes, ct %d bytes; want %d and %d", len(iv), len(ct), IVSize, len(tt.give)+TagSize)
			}
			got, err := key.Decrypt(sealed, tt.aad)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, tt.give) {
				t.Fatalf("Decrypt = %q, want %q", got, tt.give)
			}
		})
	}
}

func TestEncryptFreshIV(t *testing.T) {
	key := randomKey(t)
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		s, err := key.Encrypt([]byte("same"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.IV] {
			t.Fatalf("IV %s repeated after %d messages", s.IV, i)
		}
		seen[s.IV] = true
	}
}

func TestSealedJSON(t *testing.T) {
	b, err := json.Marshal(Sealed{IV: "aXY=", CT: "Y3Q="})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"iv":"aXY=","ct":"Y3Q="}`; string(b) != want {
		t.Fatalf("Sealed JSON %s, want %s", b, want)
	}
}

func TestNewKeyFromBytesInvalid(t *testing.T) {
	tests := []struct {
		name   string
		give   []byte
		detail string
	}{
		{"nil", nil, "0 bytes, want 32"},
		{"AES-128 size", make([]byte, 16), "16 bytes, want 32"},
		{"AES-192 size", make([]byte, 24), "24 bytes, want 32"},
		{"31 bytes", make([]byte, 31), "31 bytes, want 32"},
		{"33 bytes", make([]byte, 33), "33 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyFromBytes(tt.give)
			checkErr(t, err, ErrInvalidKey, tt.detail)
			if k != nil {
				t.Fatal("got a key with the error")
			}
		})
	}
}

func TestNilKey(t *testing.T) {
	for _, k := range []*Key{nil, {}} {
		if _, err := k.Encrypt([]byte("x"), nil); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Encrypt on %#v: %v, want ErrInvalidKey", k, err)
		}
		if _, err := k.Decrypt(Sealed{}, nil); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Decrypt on %#v: %v, want ErrInvalidKey", k, err)
		}
		if _, err := k.EncryptJSON(1, nil); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("EncryptJSON on %#v: %v, want ErrInvalidKey", k, err)
		}
		var v any
		if err := k.DecryptJSON(Sealed{}, nil, &v); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("DecryptJSON on %#v: %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestDecryptInvalid(t *testing.T) {
	key := mustKey(t, bytes.Repeat([]byte{7}, KeySize))
	aad := []byte("client-1")
	good, err := key.Encrypt([]byte(`{"event":"chat","data":"hi"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	other, err := key.Encrypt([]byte(`{"event":"chat","data":"hi"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := base64.StdEncoding.DecodeString(good.IV)
	ct, _ := base64.StdEncoding.DecodeString(good.CT)
	enc := base64.StdEncoding.EncodeToString
	flip := func(b []byte, i int) string {
		c := bytes.Clone(b)
		c[(i+len(c))%len(c)] ^= 0x01
		return enc(c)
	}
	// An IV of 12 bytes that has '+' or '/' in standard base64, so the
	// URL-safe form differs.
	urlIV := base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 4))

	tests := []struct {
		name   string
		give   Sealed
		aad    []byte
		key    *Key
		want   error
		detail string
	}{
		{name: "valid", give: good, aad: aad},
		{name: "zero value", give: Sealed{}, aad: aad, want: ErrInvalidSealed, detail: "iv: empty string"},
		{name: "iv empty", give: Sealed{CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: empty string"},
		{name: "iv 8 bytes", give: Sealed{IV: enc(iv[:8]), CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: 12 base64 characters, want 16"},
		{name: "iv 16 bytes", give: Sealed{IV: enc(append(bytes.Clone(iv), 1, 2, 3, 4)), CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: 24 base64 characters, want 16"},
		{name: "iv 11 bytes", give: Sealed{IV: enc(iv[:11]), CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: decodes to 11 bytes, want 12"},
		{name: "iv url-safe", give: Sealed{IV: urlIV, CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: uses the URL-safe"},
		{name: "iv whitespace", give: Sealed{IV: good.IV[:8] + "\n" + good.IV[8:], CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: contains whitespace"},
		{name: "iv not base64", give: Sealed{IV: "%%%%%%%%%%%%%%%%", CT: good.CT}, aad: aad, want: ErrInvalidSealed, detail: "iv: not standard base64"},
		{name: "ct empty", give: Sealed{IV: good.IV}, aad: aad, want: ErrInvalidSealed, detail: "ct: empty string"},
		{name: "ct shorter than tag", give: Sealed{IV: good.IV, CT: enc(ct[:15])}, aad: aad, want: ErrInvalidSealed, detail: "ct: 15 bytes, shorter than the 16-byte tag"},
		{name: "ct unpadded", give: Sealed{IV: good.IV, CT: base64.RawStdEncoding.EncodeToString(ct[:len(ct)-1])}, aad: aad, want: ErrInvalidSealed, detail: "ct: unpadded"},
		{name: "ct url-safe", give: Sealed{IV: good.IV, CT: base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 20))}, aad: aad, want: ErrInvalidSealed, detail: "ct: uses the URL-safe"},
		{name: "ct whitespace", give: Sealed{IV: good.IV, CT: " " + good.CT}, aad: aad, want: ErrInvalidSealed, detail: "ct: contains whitespace"},
		{name: "ct not base64", give: Sealed{IV: good.IV, CT: "****"}, aad: aad, want: ErrInvalidSealed, detail: "ct: not standard base64"},
		{name: "ct padding not at end", give: Sealed{IV: good.IV, CT: "AA==AAAA"}, aad: aad, want: ErrInvalidSealed, detail: "ct: not standard base64"},
		{name: "ct bad length with padding", give: Sealed{IV: good.IV, CT: "AAAAA="}, aad: aad, want: ErrInvalidSealed, detail: "ct: 6 base64 characters, not a multiple of 4"},
		{name: "first ct byte flipped", give: Sealed{IV: good.IV, CT: flip(ct, 0)}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "tag byte flipped", give: Sealed{IV: good.IV, CT: flip(ct, -1)}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "tag only", give: Sealed{IV: good.IV, CT: enc(ct[len(ct)-TagSize:])}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "tag truncated", give: Sealed{IV: good.IV, CT: enc(ct[:len(ct)-1])}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "iv flipped", give: Sealed{IV: flip(iv, 3), CT: good.CT}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "iv of another message", give: Sealed{IV: other.IV, CT: good.CT}, aad: aad, want: ErrDecrypt, detail: "authentication failed"},
		{name: "aad missing", give: good, aad: nil, want: ErrDecrypt, detail: "authentication failed"},
		{name: "aad altered", give: good, aad: []byte("client-2"), want: ErrDecrypt, detail: "authentication failed"},
		{name: "aad extended", give: good, aad: []byte("client-10"), want: ErrDecrypt, detail: "authentication failed"},
		{name: "other key", give: good, aad: aad, key: randomKey(t), want: ErrDecrypt, detail: "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := key
			if tt.key != nil {
				k = tt.key
			}
			got, err := k.Decrypt(tt.give, tt.aad)
			checkErr(t, err, tt.want, tt.detail)
			if tt.want != nil && got != nil {
				t.Fatalf("got plaintext %q with the error", got)
			}
		})
	}
}

func TestEncryptDecryptJSON(t *testing.T) {
	key := randomKey(t)
	type msg struct {
		Event string         `json:"event"`
		Data  map[string]int `json:"data"`
	}
	give := msg{Event: "score", Data: map[string]int{"a": 1, "b": 2}}
	aad := []byte("client-1")

	sealed, err := key.EncryptJSON(give, aad)
	if err != nil {
		t.Fatalf("EncryptJSON: %v", err)
	}
	pt, err := key.Decrypt(sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"event":"score","data":{"a":1,"b":2}}`; string(pt) != want {
		t.Fatalf("plaintext %s, want %s", pt, want)
	}
	var got msg
	if err := key.DecryptJSON(sealed, aad, &got); err != nil {
		t.Fatalf("DecryptJSON: %v", err)
	}
	if got.Event != give.Event || got.Data["a"] != 1 || got.Data["b"] != 2 || len(got.Data) != 2 {
		t.Fatalf("DecryptJSON = %+v, want %+v", got, give)
	}

	if _, err := key.EncryptJSON(make(chan int), nil); err == nil || !strings.HasPrefix(err.Error(), "ecdh: encode json: ") {
		t.Fatalf("EncryptJSON(chan): %v, want an ecdh: encode json error", err)
	}
	if err := key.DecryptJSON(sealed, nil, &got); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("DecryptJSON without aad: %v, want ErrDecrypt", err)
	}
	notJSON, err := key.Encrypt([]byte("not json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.DecryptJSON(notJSON, nil, &got); err == nil || !strings.HasPrefix(err.Error(), "ecdh: decode json: ") {
		t.Fatalf("DecryptJSON(not json): %v, want an ecdh: decode json error", err)
	}
}

// benchMessage is a typical ~100-byte outbound frame.
var benchMessage = []byte(`{"event":"chat:message","data":{"room":"general","from":"user-42","text":"hello, everyone!","ts":1700000000}}`)

func BenchmarkEncrypt(b *testing.B) {
	key := randomKey(b)
	aad := []byte("client-1")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMessage)))
	for b.Loop() {
		if _, err := key.Encrypt(benchMessage, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	key := randomKey(b)
	aad := []byte("client-1")
	sealed, err := key.Encrypt(benchMessage, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMessage)))
	for b.Loop() {
		if _, err := key.Decrypt(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	server := mustKeyPair(b)
	peer := mustKeyPair(b).PublicKeyBase64()
	salt := mustSalt(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DeriveKey(server, peer, salt); err != nil {
			b.Fatal(err)
		}
	}
}
