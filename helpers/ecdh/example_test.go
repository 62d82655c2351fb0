package ecdh_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/ignis-go/wscomponent/helpers/ecdh"
)

// The server side of the encryption flow: one key pair per server, one salt
// and one derived key per client, the key kept under the client id until the
// client disconnects.
func Example() {
	serverKey, err := ecdh.GenerateKey() // once, at start-up
	if err != nil {
		log.Fatal(err)
	}
	var keys ecdh.KeyStore

	// A browser would send this in its authenticate payload:
	// base64(await crypto.subtle.exportKey("raw", pair.publicKey)).
	browser, err := ecdh.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	clientID, clientPublicKey := "client-1", browser.PublicKeyBase64()

	// Handshake: derive this client's key and answer with the server public
	// key and the salt (they go out in the connected event).
	salt, err := ecdh.NewSalt()
	if err != nil {
		log.Fatal(err)
	}
	key, err := ecdh.DeriveKey(serverKey, clientPublicKey, salt)
	if err != nil {
		log.Fatal(err) // a real handshake rejects the client instead
	}
	keys.Set(clientID, key)
	fmt.Printf("connected: serverPublicKey %d chars, salt %d chars\n", len(serverKey.PublicKeyBase64()), len(salt))

	// Outbound: seal each message for the client; the sealed value is the
	// data of an "encrypted" event. IV and ciphertext are random, so only
	// their lengths are stable.
	k, _ := keys.Get(clientID)
	sealed, err := k.EncryptJSON(map[string]any{"event": "chat", "data": "hi"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("encrypted: iv %d chars\n", len(sealed.IV))

	// The browser derives the same key from the server key and salt.
	browserKey, err := ecdh.DeriveKey(browser, serverKey.PublicKeyBase64(), salt)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := browserKey.Decrypt(sealed, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("browser reads: %s\n", plain)

	// Disconnect: forget the key.
	keys.Delete(clientID)
	fmt.Println("keys held:", keys.Len())
	// Output:
	// connected: serverPublicKey 88 chars, salt 44 chars
	// encrypted: iv 16 chars
	// browser reads: {"data":"hi","event":"chat"}
	// keys held: 0
}

// Decoding is strict: a key in the URL-safe alphabet, unpadded, or with
// whitespace is refused with a reason.
func ExampleParsePublicKey() {
	_, err := ecdh.ParsePublicKey("BGD-1LolWp0xyWHrdMY1bWjASbiSO2H6bOZpYi5g8p-2eQP-EAi4vJmkGunpVii8ZPLxsgwtfp9Rd6PClNRGIpk")
	fmt.Println(err)
	fmt.Println(errors.Is(err, ecdh.ErrInvalidPublicKey))
	// Output:
	// ecdh: invalid public key: uses the URL-safe base64 alphabet, want standard base64 (+ and /)
	// true
}
