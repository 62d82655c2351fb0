// Regenerates the fixed vector in kat_test.go with WebCrypto alone:
//   node helpers/ecdh/testdata/webcrypto_kat.mjs
// The scalars, salt, IV, plaintext and AAD are arbitrary fixed values; every
// other value is computed here, independently of the Go code under test.
import crypto from 'node:crypto';

const { subtle } = crypto.webcrypto;
const INFO = 'ignis-ecdh-p256-aes-256-gcm-v1';
const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Fixed inputs.
const serverD = Buffer.from('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721', 'hex');
const clientD = Buffer.from('7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534', 'hex');
const salt = new Uint8Array(32).map((_, i) => i);
const iv = new Uint8Array(12).map((_, i) => 0xa0 + i);
const plaintext = new TextEncoder().encode('{"event":"chat","data":{"text":"héllo ✓"}}');
const aad = new TextEncoder().encode('client-1');

// WebCrypto imports a private scalar only with its public point, so compute
// the point through Node's ECDH and hand both over as a JWK.
function jwkFor(d) {
  const e = crypto.createECDH('prime256v1');
  e.setPrivateKey(d);
  const pub = e.getPublicKey(); // 0x04 || X || Y
  return { kty: 'EC', crv: 'P-256', d: b64url(d), x: b64url(pub.subarray(1, 33)), y: b64url(pub.subarray(33)), ext: true };
}

async function importPair(d) {
  const jwk = jwkFor(d);
  const priv = await subtle.importKey('jwk', jwk, { name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const { d: _, ...pubJwk } = jwk;
  const pub = await subtle.importKey('jwk', pubJwk, { name: 'ECDH', namedCurve: 'P-256' }, true, []);
  return { priv, pub, raw: new Uint8Array(await subtle.exportKey('raw', pub)) };
}

const server = await importPair(serverD);
const client = await importPair(clientD);
const secret = await subtle.deriveBits({ name: 'ECDH', public: client.pub }, server.priv, 256);
const secret2 = await subtle.deriveBits({ name: 'ECDH', public: server.pub }, client.priv, 256);
if (hex(secret) !== hex(secret2)) throw new Error('ECDH mismatch');
const hkdfKey = await subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits']);
const okm = await subtle.deriveBits(
  { name: 'HKDF', hash: 'SHA-256', salt, info: new TextEncoder().encode(INFO) }, hkdfKey, 256);
const aesKey = await subtle.importKey('raw', okm, 'AES-GCM', false, ['encrypt']);
const ct = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, aesKey, plaintext);

console.log(JSON.stringify({
  serverPrivate: hex(serverD),
  serverPublic: b64(server.raw),
  clientPrivate: hex(clientD),
  clientPublic: b64(client.raw),
  salt: b64(salt),
  sharedSecret: hex(secret),
  key: hex(okm),
  iv: b64(iv),
  plaintext: new TextDecoder().decode(plaintext),
  aad: new TextDecoder().decode(aad),
  ct: b64(ct),
}, null, 2));
