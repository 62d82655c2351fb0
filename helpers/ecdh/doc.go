// Package ecdh is the key exchange and cipher behind the WebSocket
// encryption flow, in a format a browser can produce and consume with
// WebCrypto alone, and the same format as the Ignis crypto helper, so one
// browser client works against both servers.
//
// # Wire format
//
// Every binary value travels as standard base64 (RFC 4648 §4, alphabet
// A–Z a–z 0–9 + /, padded with '='), never the URL-safe alphabet, never
// unpadded, never with whitespace; decoding rejects anything else.
//
//   - Public key: the uncompressed P-256 point 0x04‖X‖Y (65 bytes, what
//     WebCrypto exportKey("raw") returns), 88 base64 characters.
//   - Shared secret: the 32-byte big-endian X coordinate of the ECDH product,
//     which is what WebCrypto deriveBits({name: "ECDH", public}, priv, 256)
//     returns.
//   - Salt: 32 random bytes chosen by the server per handshake, 44 base64
//     characters.
//   - Message key: HKDF-SHA-256 (RFC 5869) with the shared secret as input
//     keying material, the salt as salt, the ASCII string
//     "ignis-ecdh-p256-aes-256-gcm-v1" as info, and 32 bytes of output, used
//     as an AES-256-GCM key.
//   - Message: the JSON object {"iv": base64, "ct": base64}, where iv is 12
//     random bytes chosen per message and ct is the AES-GCM ciphertext with
//     the 16-byte tag appended (what WebCrypto encrypt({name: "AES-GCM", iv})
//     returns). Additional authenticated data is optional; both sides must
//     agree on it out of band.
//
// # Threat model
//
// It protects the confidentiality and integrity of payloads against a party
// that can read the transport but not alter the handshake, such as a
// TLS-terminating proxy or a log of frames. It does not authenticate the
// server key (an active man in the middle who can alter the handshake can
// substitute both public keys unless the client pins the server public key or
// receives it over a channel it already trusts) and it gives no replay or
// reordering protection across messages of one connection.
//
// Keys are per connection: a random 96-bit IV keeps the chance of an IV
// collision negligible for far more messages than one connection carries
// (NIST SP 800-38D allows 2^32 random IVs per key), so re-key by
// reconnecting, never by reusing a Key across connections.
//
// A typical server generates one [PrivateKey] at start-up, answers each
// handshake with [NewSalt] and [DeriveKey], keeps the [Key] in a [KeyStore]
// under the client id, seals outbound payloads with [Key.EncryptJSON], and
// deletes the entry when the client disconnects. The package has no
// dependency on the server; the ready-made handshake and transformer pair
// lives elsewhere and is built on these pieces.
package ecdh
