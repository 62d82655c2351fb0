// ignis-ws-client.js: a browser client for the wscomponent WebSocket server
// (github.com/ignis-go/wscomponent) and for Ignis' WebSocketComponent, with
// the per-client encryption of server/encryption. A plain ES module that
// uses WebCrypto only; no dependencies, no build step. Serve it with
// encryption.JSHandler() and import it from a page:
//
//   import { connect } from "/js/ignis-ws-client.js";
//
//   const socket = await connect("wss://example.com/ws", {
//     token: "…",                       // goes into the authenticate payload
//     onMessage: (msg, meta) => console.log(msg.event, msg.data, meta.encrypted),
//     onError: (err) => console.warn(err.message),
//     onClose: (ev) => console.log("closed", ev.code, ev.reason),
//   });
//   await socket.join(["lobby"]);
//   await socket.send("chat", { text: "hello" }); // encrypted on the wire
//
// What it does: generates an ECDH P-256 key pair (the private key cannot be
// exported), sends {"event":"authenticate","data":{token, publicKey}} with the
// raw public key in standard base64, and on "connected" derives the
// AES-256-GCM key from serverPublicKey and salt (ECDH deriveBits 256, then
// HKDF-SHA-256 with info "ignis-ecdh-p256-aes-256-gcm-v1"). Then every
// {"event":"encrypted","data":{iv,ct}} frame is decrypted and the frame inside
// ({event, data}) goes to onMessage with meta.encrypted = true; plaintext
// frames go to onMessage as they are. send(), join() and leave() encrypt once
// the key exists. Frames are handled, and sent, in order.
//
// The server public key is not authenticated by the protocol: pass
// serverPublicKey (the expected base64 key) to pin it, or an attacker who can
// alter the handshake can read everything.

/** HKDF info string; must match the server's (helpers/ecdh Info). */
export const HKDF_INFO = "ignis-ecdh-p256-aes-256-gcm-v1";

/** Default period of application heartbeats, in milliseconds. The server's
 * default HeartbeatTimeout is 90 s. */
export const DEFAULT_HEARTBEAT_INTERVAL = 25000;

const PUBLIC_KEY_SIZE = 65;
const SALT_SIZE = 32;
const IV_SIZE = 12;
const ECDH_PARAMS = { name: "ECDH", namedCurve: "P-256" };

/** The server closed the connection (or it failed) before or after
 * "connected". code and reason are the WebSocket close code and reason,
 * serverMessage the last {"event":"error"} message, if any. */
export class IgnisCloseError extends Error {
  constructor(code, reason, serverMessage) {
    super(`connection closed (${code}${reason ? " " + reason : ""})` +
      (serverMessage ? `: ${serverMessage}` : ""));
    this.name = "IgnisCloseError";
    this.code = code;
    this.reason = reason;
    this.serverMessage = serverMessage;
  }
}

/** An {"event":"error","data":{"message"}} frame from the server. */
export class IgnisServerError extends Error {
  constructor(message) {
    super(message);
    this.name = "IgnisServerError";
  }
}

/**
 * One connection to the server.
 *
 * options:
 *   token             put into the authenticate payload as "token"
 *   authData          more members of the authenticate payload (object)
 *   encrypt           default true: send publicKey and require serverPublicKey
 *                     and salt in "connected"; false: a plaintext client
 *   serverPublicKey   pin: the expected server public key (base64)
 *   additionalData    (clientId) => Uint8Array | undefined: AES-GCM AAD, the
 *                     same bytes as the server's Options.AAD
 *   heartbeatInterval milliseconds between heartbeats (0: none)
 *   onConnected(data) the "connected" payload (id, userId, time, …)
 *   onMessage(msg, {encrypted})  every other frame, decrypted if it was
 *   onError(err)      server error frames and local failures
 *   onClose(event)    the CloseEvent, after every earlier frame was handled
 */
export class IgnisSocket {
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    /** The client id, from "connected". */
    this.clientId = null;
    /** The user id, from "connected". */
    this.userId = null;
    /** Whether frames to and from the server are encrypted. */
    this.encrypted = false;
    this.ws = null;
    this._key = null;
    this._keyPair = null;
    this._connected = false;
    this._lastServerError = undefined;
    this._opening = null;
    this._settle = () => {};
    this._heartbeat = null;
    // One chain per direction keeps frames in order even though WebCrypto
    // calls are asynchronous and may finish out of order.
    this._inbound = Promise.resolve();
    this._outbound = Promise.resolve();
  }

  /** Connects, authenticates and completes the handshake. Resolves with the
   * "connected" payload; rejects with IgnisCloseError if the server closes
   * first (e.g. 4003 authentication failed, 4004 encryption required). */
  open() {
    if (!this._opening) this._opening = this._open();
    return this._opening;
  }

  async _open() {
    const encrypt = this.options.encrypt !== false;
    let publicKey;
    if (encrypt) {
      this._keyPair = await crypto.subtle.generateKey(ECDH_PARAMS, false, ["deriveBits"]);
      const raw = await crypto.subtle.exportKey("raw", this._keyPair.publicKey);
      publicKey = toBase64(new Uint8Array(raw));
    }
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let settled = false;
      this._settle = (err, value) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve(value);
      };
      ws.onopen = () => {
        const data = { ...(this.options.authData || {}) };
        if (this.options.token !== undefined) data.token = this.options.token;
        if (publicKey) data.publicKey = publicKey;
        ws.send(JSON.stringify({ event: "authenticate", data }));
      };
      ws.onmessage = (ev) => {
        this._inbound = this._inbound
          .then(() => this._receive(ev.data))
          .catch((err) => this._error(err));
      };
      ws.onclose = (ev) => {
        this._stopHeartbeat();
        this._inbound = this._inbound.then(() => {
          this._key = null;
          this._connected = false;
          this._settle(new IgnisCloseError(ev.code, ev.reason, this._lastServerError));
          this._call("onClose", ev);
        });
      };
    });
  }

  async _receive(raw) {
    const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      throw new Error("frame from server is not JSON");
    }
    if (msg === null || typeof msg !== "object" || typeof msg.event !== "string") {
      throw new Error("frame from server is not an event object");
    }
    switch (msg.event) {
      case "connected":
        await this._onConnected(msg.data || {});
        return;
      case "error": {
        const message = msg.data && typeof msg.data.message === "string" ? msg.data.message : "error";
        this._lastServerError = message;
        this._call("onError", new IgnisServerError(message));
        return;
      }
      case "encrypted":
        if (this._key) {
          const inner = await this._decrypt(msg.data);
          this._call("onMessage", inner, { encrypted: true });
          return;
        }
        break;
    }
    this._call("onMessage", msg, { encrypted: false });
  }

  async _onConnected(data) {
    if (this.options.encrypt !== false) {
      const pinned = this.options.serverPublicKey;
      if (typeof data.serverPublicKey !== "string" || typeof data.salt !== "string") {
        this._abort("server did not complete the encryption handshake");
        return;
      }
      if (pinned !== undefined && pinned !== data.serverPublicKey) {
        this._abort("server public key does not match the pinned key");
        return;
      }
      this._key = await deriveMessageKey(this._keyPair.privateKey, data.serverPublicKey, data.salt);
      this.encrypted = true;
    }
    this.clientId = data.id ?? null;
    this.userId = data.userId ?? null;
    this._connected = true;
    this._startHeartbeat();
    this._call("onConnected", data);
    this._settle(null, data);
  }

  _abort(message) {
    const err = new Error(message);
    this._settle(err);
    this._call("onError", err);
    this.ws.close(1000, "client refused handshake");
  }

  async _decrypt(data) {
    if (data === null || typeof data !== "object" || typeof data.iv !== "string" || typeof data.ct !== "string") {
      throw new Error("encrypted frame without iv and ct");
    }
    const iv = fromBase64(data.iv);
    if (iv.length !== IV_SIZE) throw new Error("encrypted frame with a bad iv");
    const plain = await crypto.subtle.decrypt(this._gcmParams(iv), this._key, fromBase64(data.ct));
    const inner = JSON.parse(new TextDecoder().decode(plain));
    if (inner === null || typeof inner !== "object" || typeof inner.event !== "string") {
      throw new Error("encrypted frame does not hold an event");
    }
    return inner;
  }

  _gcmParams(iv) {
    const params = { name: "AES-GCM", iv };
    const aad = this.options.additionalData ? this.options.additionalData(this.clientId) : undefined;
    if (aad !== undefined) params.additionalData = aad;
    return params;
  }

  /** Sends {event, data}, encrypted when the connection is. Resolves once the
   * frame was handed to the socket. Throws before "connected". */
  send(event, data) {
    if (!this._connected) return Promise.reject(new Error("not connected"));
    const frame = data === undefined ? { event } : { event, data };
    const key = this._key;
    const next = this._outbound.then(async () => {
      let out = JSON.stringify(frame);
      if (key) {
        const iv = crypto.getRandomValues(new Uint8Array(IV_SIZE));
        const ct = await crypto.subtle.encrypt(this._gcmParams(iv), key, new TextEncoder().encode(out));
        out = JSON.stringify({ event: "encrypted", data: { iv: toBase64(iv), ct: toBase64(new Uint8Array(ct)) } });
      }
      if (this.ws.readyState !== WebSocket.OPEN) throw new Error("connection is closed");
      this.ws.send(out);
    });
    this._outbound = next.catch(() => {});
    return next;
  }

  /** Asks to join rooms; the server joins those its ValidateRoom allows. */
  join(rooms) {
    return this.send("join", { rooms });
  }

  /** Leaves rooms. */
  leave(rooms) {
    return this.send("leave", { rooms });
  }

  /** Closes the connection. */
  close(code = 1000, reason = "") {
    this._stopHeartbeat();
    if (this.ws) this.ws.close(code, reason);
  }

  _startHeartbeat() {
    const interval = this.options.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL;
    if (interval <= 0) return;
    this._heartbeat = setInterval(() => {
      // Plaintext on purpose: a heartbeat carries nothing to hide.
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{"event":"heartbeat"}');
    }, interval);
  }

  _stopHeartbeat() {
    if (this._heartbeat !== null) clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  _error(err) {
    this._call("onError", err instanceof Error ? err : new Error(String(err)));
  }

  _call(name, ...args) {
    const fn = this.options[name];
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (err) {
      // An application callback must not break the frame chain.
      if (typeof globalThis.reportError === "function") globalThis.reportError(err);
      else console.error(err);
    }
  }
}

/** Creates an IgnisSocket and waits for open(). */
export async function connect(url, options = {}) {
  const socket = new IgnisSocket(url, options);
  await socket.open();
  return socket;
}

/** Derives the AES-256-GCM key shared with the server. Exported for tests
 * and custom clients. */
export async function deriveMessageKey(privateKey, serverPublicKeyB64, saltB64) {
  const serverKeyRaw = fromBase64(serverPublicKeyB64);
  const salt = fromBase64(saltB64);
  if (serverKeyRaw.length !== PUBLIC_KEY_SIZE) throw new Error("server public key has the wrong size");
  if (salt.length !== SALT_SIZE) throw new Error("salt has the wrong size");
  const serverKey = await crypto.subtle.importKey("raw", serverKeyRaw, ECDH_PARAMS, false, []);
  const secret = await crypto.subtle.deriveBits({ name: "ECDH", public: serverKey }, privateKey, 256);
  const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info: new TextEncoder().encode(HKDF_INFO) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** Standard padded base64 of bytes. */
export function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Decodes standard padded base64 strictly (no URL-safe alphabet, no
 * whitespace, padding required), like the server. */
export function fromBase64(b64) {
  if (typeof b64 !== "string" || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
    throw new Error("not standard base64");
  }
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
