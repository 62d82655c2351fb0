// The browser side of the helpers/ecdh wire format, written against WebCrypto
// only (Node's crypto.webcrypto.subtle is the API a browser has), so the Go
// tests can check that both implementations agree. It plays the handshake in
// the order the real one runs; binary values are standard base64.
//
// 1. stdout, one line:  {"clientPublicKey"}
//    (the browser's authenticate payload carries its raw public key)
// 2. stdin, until EOF:  {"serverPublicKey", "salt",
//                        "messages": [{"plaintext", "aad" | null, "sealed": {"iv", "ct"}}]}
//    (the connected event; each "sealed" is Go's encryption of that
//    plaintext under that aad with the key Go derived)
// 3. stdout, one line:  {"sharedSecret", "key",
//                        "messages": [{"opened", "sealed": {"iv", "ct"},
//                                      "rejectedWrongAAD", "rejectedTampered"}]}
// On failure: one line {"error"} and exit status 1.
import crypto from 'node:crypto';

const { subtle } = crypto.webcrypto;
const INFO = 'ignis-ecdh-p256-aes-256-gcm-v1';

const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const unb64 = (s) => new Uint8Array(Buffer.from(s, 'base64'));
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function rejects(promise) {
  try {
    await promise;
    return false;
  } catch {
    return true;
  }
}

const gcm = (iv, aad) => (aad === null ? { name: 'AES-GCM', iv } : { name: 'AES-GCM', iv, additionalData: aad });

async function main() {
  const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  send({ clientPublicKey: b64(await subtle.exportKey('raw', pair.publicKey)) });

  const input = await readStdin();
  const serverPublic = await subtle.importKey(
    'raw', unb64(input.serverPublicKey), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const sharedSecret = await subtle.deriveBits({ name: 'ECDH', public: serverPublic }, pair.privateKey, 256);

  const hkdfKey = await subtle.importKey('raw', sharedSecret, 'HKDF', false, ['deriveKey']);
  const key = await subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: unb64(input.salt), info: new TextEncoder().encode(INFO) },
    hkdfKey,
    { name: 'AES-GCM', length: 256 },
    true, // extractable only so the test can compare raw key bytes; a browser passes false
    ['encrypt', 'decrypt'],
  );

  const messages = [];
  for (const m of input.messages) {
    const plaintext = unb64(m.plaintext);
    const aad = m.aad === null ? null : unb64(m.aad);
    const goIV = unb64(m.sealed.iv);
    const goCT = unb64(m.sealed.ct);

    const opened = await subtle.decrypt(gcm(goIV, aad), key, goCT);

    const wrongAAD = aad === null ? new Uint8Array([1]) : new Uint8Array([...aad, 0]);
    const rejectedWrongAAD = await rejects(subtle.decrypt(gcm(goIV, wrongAAD), key, goCT));
    const tampered = goCT.slice();
    tampered[tampered.length - 1] ^= 0x01; // last tag byte
    const rejectedTampered = await rejects(subtle.decrypt(gcm(goIV, aad), key, tampered));

    const iv = crypto.webcrypto.getRandomValues(new Uint8Array(12));
    const ct = await subtle.encrypt(gcm(iv, aad), key, plaintext);

    messages.push({ opened: b64(opened), sealed: { iv: b64(iv), ct: b64(ct) }, rejectedWrongAAD, rejectedTampered });
  }

  send({
    sharedSecret: b64(sharedSecret),
    key: b64(await subtle.exportKey('raw', key)),
    messages,
  });
}

main().catch((err) => {
  send({ error: String(err && err.stack ? err.stack : err) });
  process.exitCode = 1;
});
