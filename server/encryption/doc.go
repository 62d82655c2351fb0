// Package encryption is the ready-made encryption for the server helper: a
// [Pair] answers the handshake, encrypts what the server sends to encrypted
// clients, decrypts what they send back, and forgets each client's key when
// it disconnects. It is built on helpers/ecdh and speaks the format of the
// Ignis crypto helper, and it ships a browser client (an ES module that needs
// nothing but WebCrypto, see [ClientJS]) that speaks it too.
//
// Wiring it takes three lines:
//
//	pair, err := encryption.New(encryption.Options{Logger: log})
//	opts := server.Options{Redis: rdb, Authenticate: auth}
//	pair.Apply(&opts) // Handshake, both transformers, key clean-up, RequireEncryption
//
// # Wire format
//
// The client sends its P-256 public key (raw uncompressed point, standard
// base64) in the authenticate payload: {"token": …, "publicKey": "BA…"}.
// After authentication the server derives a per-connection AES-256-GCM key
// (ECDH, then HKDF-SHA-256 with a fresh 32-byte salt and the info
// "ignis-ecdh-p256-aes-256-gcm-v1") and answers in plaintext:
// {"event":"connected","data":{"id":…,"userId":…,"time":…,"serverPublicKey":…,"salt":…}}.
// From then on every application message to the client travels as
//
//	{"event":"encrypted","data":{"iv":"<12 bytes, base64>","ct":"<ciphertext‖tag, base64>"}}
//
// whose plaintext is exactly the frame it replaces, {"event":…,"data":…}.
// The client may send the same envelope; the server decrypts it and routes
// the frame inside like any other frame (join, leave and application events;
// an "encrypted" frame inside an "encrypted" frame is ignored). System frames
// (connected, error) and the close reasons stay in plaintext, as the protocol
// requires. When [Options.AAD] is set, its bytes for the client are
// authenticated with every message in both directions, and the client must
// use the same bytes.
//
// # Threat model
//
// It protects the confidentiality and integrity of message payloads against
// parties that can read the transport, such as a TLS-terminating proxy or
// logging middleware. It does not authenticate the server key — an active
// attacker who can modify the handshake can substitute keys unless the
// client pins the server public key (use [Options.PrivateKey] to keep one
// key across restarts and instances) — and it has no replay protection.
//
// Decrypting inbound frames is not opt-in: the client module encrypts what
// it sends, so [Pair.Apply] binds the InboundTransformer too. It is not
// enforced either: the server still routes plaintext frames from an
// encrypted client, so an application that must refuse them has to check
// for itself.
//
// # Keys and their lifetime
//
// One server key pair per Pair; one derived key per connection, kept in
// memory under the client id and dropped by the ClientDisconnected wrapper
// ([Pair.WrapDisconnected], which Apply installs). A handshake that finishes
// after its client has already gone drops its key itself, so no key outlives
// its connection. [Pair.Len] counts the stored keys.
//
// For optional encryption (RequireEncryption off), the application runs the
// exchange itself: [Pair.Exchange] from a message handler, then the helper's
// EnableClientEncryptionAfter, which sends the result in plaintext and
// switches the client in one step, so the client learns the key before the
// first encrypted frame and nothing sent later goes out in plaintext.
package encryption
