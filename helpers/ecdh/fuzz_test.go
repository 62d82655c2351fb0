package ecdh

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/, so plain go test runs
// them: a valid input, near misses of each rejection, and odd encodings.

// FuzzParsePublicKey checks that ParsePublicKey never panics, fails only
// with ErrInvalidPublicKey, and accepts nothing but the canonical encoding
// of a point on the curve.
func FuzzParsePublicKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			if !errors.Is(err, ErrInvalidPublicKey) || !strings.HasPrefix(err.Error(), "ecdh: ") {
				t.Fatalf("unexpected error %q", err)
			}
			return
		}
		if got := k.Base64(); got != s {
			t.Fatalf("accepted non-canonical input %q (canonical %q)", s, got)
		}
		// An accepted key must be usable without error.
		if _, err := fuzzPrivateKey(t).SharedSecret(k); err != nil {
			t.Fatalf("SharedSecret with accepted key: %v", err)
		}
	})
}

// FuzzDecrypt checks that Decrypt never panics on arbitrary iv, ct and aad,
// fails only with ErrInvalidSealed or ErrDecrypt, and accepts only canonical
// encodings (re-sealing the plaintext reproduces the input exactly).
func FuzzDecrypt(f *testing.F) {
	key := fuzzKey(f)
	f.Fuzz(func(t *testing.T, iv, ct string, aad []byte) {
		s := Sealed{IV: iv, CT: ct}
		pt, err := key.Decrypt(s, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !errors.Is(err, ErrInvalidSealed) && !errors.Is(err, ErrDecrypt) {
				t.Fatalf("unexpected error %q", err)
			}
			if !strings.HasPrefix(err.Error(), "ecdh: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		rawIV, err := base64.StdEncoding.DecodeString(iv)
		if err != nil {
			t.Fatalf("accepted iv %q that base64 rejects: %v", iv, err)
		}
		if again := key.sealWithIV(rawIV, pt, aad); again != s {
			t.Fatalf("accepted non-canonical %+v (canonical %+v)", s, again)
		}
		// Anything Decrypt accepts must survive a round trip through the
		// JSON form too.
		var v any
		if err := key.DecryptJSON(s, aad, &v); err != nil && !strings.HasPrefix(err.Error(), "ecdh: decode json: ") {
			t.Fatalf("DecryptJSON: %v", err)
		}
	})
}

// fuzzKey is the KAT key, so the committed valid seed decrypts.
func fuzzKey(tb testing.TB) *Key {
	tb.Helper()
	return mustKey(tb, mustHex(tb, katKey))
}

// fuzzPrivateKey is the KAT server key; a fixed key keeps runs reproducible.
func fuzzPrivateKey(tb testing.TB) *PrivateKey {
	tb.Helper()
	k, err := NewPrivateKeyFromBytes(mustHex(tb, katServerPrivate))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestFuzzSeedsCoverSuccess guards the corpora: if the valid seeds stopped
// being valid, the fuzzers would never reach their success-path checks.
func TestFuzzSeedsCoverSuccess(t *testing.T) {
	if _, err := ParsePublicKey(katClientPublic); err != nil {
		t.Fatal(err)
	}
	pt, err := fuzzKey(t).Decrypt(Sealed{IV: katIV, CT: katCT}, []byte(katAAD))
	if err != nil || !bytes.Equal(pt, []byte(katPlaintext)) {
		t.Fatalf("KAT seed does not decrypt: %q, %v", pt, err)
	}
}
