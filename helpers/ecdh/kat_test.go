package ecdh

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// A fixed vector computed by WebCrypto (Node 20) with
// testdata/webcrypto_kat.mjs, independently of this package. It pins the
// whole scheme: point encoding, ECDH output, HKDF salt and info, GCM layout.
const (
	katServerPrivate = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
	katServerPublic  = "BGD+1LolWp0xyWHrdMY1bWjASbiSO2H6bOZpYi5g8p+2eQP+EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk="
	katClientPrivate = "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534"
	katClientPublic  = "BOrSGFkBGeiHaykUb/icphdwxO27+X04zjhe0oHYprIwKK9hKB/TXi+nACUjrMhaQpywbuZkgyU4n1nt/OFAUUE="
	katSalt          = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	katSharedSecret  = "61e109425a7adbb9d0137091cff10a55550b708d14ad0137b80fa0ec1328394f"
	katKey           = "ad6529c816810633dfae157f3a0b10540fe44abf144a94546e1469a21e183122"
	katIV            = "oKGio6Slpqeoqaqr"
	katPlaintext     = `{"event":"chat","data":{"text":"héllo ✓"}}`
	katAAD           = "client-1"
	katCT            = "8bAxKebrXvjnDuZ0d932tUVSAhHjZm3drzJEUpGYS2c3RT/rzUG90rqzY40ewmIpTtmwhdSMkfVxTsEhDg=="
)

func TestKnownAnswer(t *testing.T) {
	server, err := NewPrivateKeyFromBytes(mustHex(t, katServerPrivate))
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewPrivateKeyFromBytes(mustHex(t, katClientPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := server.PublicKeyBase64(); got != katServerPublic {
		t.Fatalf("server public key %s, want %s", got, katServerPublic)
	}
	if got := client.PublicKeyBase64(); got != katClientPublic {
		t.Fatalf("client public key %s, want %s", got, katClientPublic)
	}

	clientPub, err := ParsePublicKey(katClientPublic)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := server.SharedSecret(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, katSharedSecret); !bytes.Equal(secret, want) {
		t.Fatalf("shared secret %x, want %x", secret, want)
	}

	for _, side := range []struct {
		name string
		priv *PrivateKey
		peer string
	}{
		{"server", server, katClientPublic},
		{"client", client, katServerPublic},
	} {
		raw, err := deriveKeyBytes(side.priv, side.peer, katSalt)
		if err != nil {
			t.Fatal(err)
		}
		if want := mustHex(t, katKey); !bytes.Equal(raw, want) {
			t.Fatalf("%s derived key %x, want %x", side.name, raw, want)
		}
	}

	key, err := DeriveKey(server, katClientPublic, katSalt)
	if err != nil {
		t.Fatal(err)
	}
	iv, err := base64.StdEncoding.DecodeString(katIV)
	if err != nil {
		t.Fatal(err)
	}
	want := Sealed{IV: katIV, CT: katCT}
	if got := key.sealWithIV(iv, []byte(katPlaintext), []byte(katAAD)); got != want {
		t.Fatalf("sealed %+v, want %+v", got, want)
	}
	pt, err := key.Decrypt(want, []byte(katAAD))
	if err != nil || string(pt) != katPlaintext {
		t.Fatalf("Decrypt = %q, %v; want %q", pt, err, katPlaintext)
	}
}
