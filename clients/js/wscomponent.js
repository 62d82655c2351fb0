// wscomponent.js: the JavaScript client of the wscomponent WebSocket server
// (github.com/ignis-go/wscomponent), for browsers and Node ≥ 20. One ES
// module, no dependencies, no build step; types in wscomponent.d.ts; the
// guide is README.md next to this file.
//
//   import { connect } from "./wscomponent.js";
//
//   const client = await connect("wss://app.example/ws", {
//     token: async () => (await fetch("/api/token")).text(), // every (re)connect
//     on: { chat: (data) => console.log(data.text) },
//   });
//   await client.join(["lobby"]);               // resolves with the server's ack
//   const reply = await client.request("echo", { n: 1 });
//
// What it does: authenticates on every connection (credentials from a
// callback, so a reconnect can use a fresh token), sends heartbeats,
// reconnects with exponential backoff and full jitter, joins the app's rooms
// again after a reconnect (with "since" offsets for rooms whose frames carried
// "room" and "offset", SPEC §9.5) and says per room whether the server
// recovered what was missed; answers "session-expiring" with a "refresh"; and
// runs the optional per-connection encryption of server/encryption (P-256
// ECDH, HKDF-SHA-256, AES-256-GCM via WebCrypto).
//
// Every frame of one connection is handled in order, and sent in order, even
// though WebCrypto calls are asynchronous.

/** HKDF info string; must match the server's (helpers/ecdh Info). */
export const HKDF_INFO = "ignis-ecdh-p256-aes-256-gcm-v1";

/** Close codes the server uses (README "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // server shutting down
  ABNORMAL: 1006, // no close frame: network failure, server unreachable
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008, // rate limit, too many connections, backpressure
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  AUTH_TIMEOUT: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  AUTH_FAILED: 4003,
  ENCRYPTION_REQUIRED: 4004,
  DISCONNECTED: 4005, // Helper.Disconnect / DisconnectUser / DisconnectClient
  SESSION_EXPIRED: 4006,
});

/** Defaults of the options, in milliseconds where they are durations. */
export const DEFAULTS = Object.freeze({
  heartbeatInterval: 25000, // the server closes clients silent for 90 s
  requestTimeout: 10000,
  connectTimeout: 15000, // from opening the socket to "connected"; the server allows 3×AuthTimeout = 15 s
  minReconnectDelay: 500,
  maxReconnectDelay: 30000,
  maxReconnectAttempts: Infinity,
  maxRoomsPerRequest: 100, // the server's default MaxRoomsPerRequest
});

const PUBLIC_KEY_SIZE = 65;
const SALT_SIZE = 32;
const IV_SIZE = 12;
const ECDH_PARAMS = { name: "ECDH", namedCurve: "P-256" };
const WS_OPEN = 1; // WebSocket.OPEN, also for constructors without statics

// Frames the server sends outside the encrypted envelope, and that the
// client handles itself.
const SYSTEM_EVENTS = new Set(["connected", "error", "ack", "session-expiring", "refreshed", "gap", "encrypted"]);

/** An {"event":"error","data":{"message"}} frame from the server: the answer
 * to a request (id set), or a complaint about a frame without one. */
export class ServerError extends Error {
  constructor(message, id) {
    super(message);
    this.name = "ServerError";
    /** The request id the error answers, if any. */
    this.id = id;
  }
}

/** A request got no answer within its timeout. */
export class TimeoutError extends Error {
  constructor(what, ms) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** The connection closed: a request in flight on it cannot be answered any
 * more, or the client stopped for good (connect() rejects with it). */
export class CloseError extends Error {
  constructor(code, reason, serverMessage, message) {
    super(message ||
      `connection closed (${code}${reason ? " " + reason : ""})` + (serverMessage ? `: ${serverMessage}` : ""));
    this.name = "CloseError";
    this.code = code;
    this.reason = reason;
    /** The last "error" message the server sent before closing, if any. */
    this.serverMessage = serverMessage;
  }
}

/**
 * The default reconnect policy: whether a socket that closed with code
 * should be followed by another attempt. ctx: {reason, serverMessage,
 * wasConnected, refreshable, encryptDynamic}.
 *
 * Stops for: 1000 (a normal close), 1008 (the server's policy: rate limit,
 * too many connections, backpressure — a retry would repeat it), 4003
 * (credentials refused), 4004 (encryption required or handshake failed —
 * unless the encrypt option is a function that may answer differently next
 * time), 4005 and every other code from 4000–4999 the app chose (a
 * deliberate disconnect by the server), and 4006 (session expired) unless
 * the credentials come from a callback that can supply fresh ones.
 * Reconnects for everything else: 1001 (server restart or deploy), 1006 (the
 * network or the server went away), 1011, 4001 and 4002 (timeouts), 1007,
 * 1009 and the other transport codes.
 */
export function defaultShouldReconnect(code, ctx = {}) {
  switch (code) {
    case CloseCode.NORMAL:
    case CloseCode.POLICY_VIOLATION:
    case CloseCode.AUTH_FAILED:
      return false;
    case CloseCode.ENCRYPTION_REQUIRED:
      return Boolean(ctx.encryptDynamic);
    case CloseCode.SESSION_EXPIRED:
      return Boolean(ctx.refreshable);
    case CloseCode.AUTH_TIMEOUT:
    case CloseCode.HEARTBEAT_TIMEOUT:
      return true;
  }
  return !(code >= 4000 && code <= 4999);
}

/**
 * A client that stays connected: it reconnects, re-authenticates and
 * rejoins its rooms until close() or a close the reconnect policy refuses.
 * Create it, register handlers, then call connect() — or use the connect()
 * function, which does both.
 */
export class WSClient {
  constructor(url, options = {}) {
    if (typeof url !== "string" && !(url instanceof URL)) throw new TypeError("url must be a string or URL");
    this.url = String(url);
    this.options = options;
    /** "idle" | "connecting" | "connected" | "waiting" (before a reconnect) | "closed" */
    this.state = "idle";
    /** The client id and user id of the current (or last) connection. */
    this.clientId = null;
    this.userId = null;
    /** Whether the current connection is encrypted. */
    this.encrypted = false;
    this._handlers = new Map();
    this._rooms = new Set(); // what the app joined and did not leave; rejoined
    this._offsets = new Map(); // room → last offset seen (SPEC §9.5)
    this._pending = new Map(); // request id → entry
    this._queue = []; // requests waiting for a ready connection
    this._waiters = []; // connect() promises waiting for "connected"
    this._seq = 0;
    this._attempt = 0; // reconnect attempts since the last "connected"
    this._conn = null;
    this._timer = null; // the pending reconnect
    this._stopped = null; // the CloseError that stopped the client
    this._connected = null; // the "connected" payload of the current connection
    for (const [event, fn] of Object.entries(options.on || {})) this.on(event, fn);
  }

  /** The rooms the client is in (joined and acknowledged, not left), which
   * it joins again after a reconnect. */
  get rooms() {
    return [...this._rooms];
  }

  /** The last offset seen per history room (SPEC §9.5). */
  get offsets() {
    return Object.fromEntries(this._offsets);
  }

  /** Registers handler for event and returns a function that removes it.
   * System events: "connected", "disconnected", "rejoined", "error",
   * "session-expiring", "refreshed", "gap", "presence", "*" (every
   * application frame). Any other name is an application event: handler
   * gets (data, frame). */
  on(event, handler) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    let set = this._handlers.get(event);
    if (!set) this._handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => this.off(event, handler);
  }

  /** Removes a handler added with on(). */
  off(event, handler) {
    const set = this._handlers.get(event);
    if (set) set.delete(handler);
  }

  /** Starts connecting (if not yet) and resolves with the "connected"
   * payload of the next successful connection. Rejects with CloseError when
   * the client stops for good first (e.g. 4003, reconnect attempts used up,
   * close()). */
  connect() {
    if (this._stopped) return Promise.reject(this._stopped);
    if (this.state === "connected" && this._connected) return Promise.resolve(this._connected);
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === "idle") this._open();
    return p;
  }

  /** Closes the connection and stops reconnecting. Pending requests reject
   * with CloseError. */
  close(code = CloseCode.NORMAL, reason = "") {
    if (this.state === "closed") return;
    const conn = this._conn;
    clearTimeout(this._timer);
    this._timer = null;
    const wasConnected = Boolean(conn && conn.connected);
    this._stop(new CloseError(code, reason, undefined, "client closed"),
      { code, reason, wasConnected, willReconnect: false, byClient: true });
    if (conn) {
      this._endConn(conn);
      if (conn.ws) {
        try {
          conn.ws.close(code, reason);
        } catch {
          conn.ws.close();
        }
      }
    }
  }

  /** Sends {event, data} without an id; encrypted when the connection is.
   * Resolves once the frame was handed to the socket; rejects at once when
   * not connected (nothing is buffered). */
  send(event, data) {
    const conn = this._conn;
    if (!conn || !conn.connected) return Promise.reject(new Error("not connected"));
    return this._write(conn, { event, data });
  }

  /** Sends {event, data, id} and resolves with the frame that answers it
   * ({event, data, id}); rejects with ServerError (the server's "error"
   * reply: your ClientError text, or "Internal error"), TimeoutError, or
   * CloseError (the connection dropped before the answer). Made while
   * disconnected, it waits for the next connection within its timeout. */
  request(event, data, opts = {}) {
    if (typeof event !== "string" || event === "") return Promise.reject(new TypeError("event must be a non-empty string"));
    return this._request(event, data, opts, (frame) => frame);
  }

  /** Joins rooms; resolves with the ack {rooms, refused, recovered?} once
   * the server has them live. Accepted rooms are joined again after every
   * reconnect. opts.since: {room: offset} to recover from. */
  join(rooms, opts = {}) {
    try {
      rooms = roomList(rooms);
    } catch (err) {
      return Promise.reject(err);
    }
    const data = { rooms };
    const since = opts.since || pick(this._offsets, rooms);
    if (since && Object.keys(since).length > 0) data.since = since;
    return this._request("join", data, opts, (frame) => {
      const ack = ackData(frame);
      for (const r of ack.rooms) this._rooms.add(r);
      return ack;
    });
  }

  /** Leaves rooms (at once for the rejoin list); resolves with the ack. */
  leave(rooms, opts = {}) {
    try {
      rooms = roomList(rooms);
    } catch (err) {
      return Promise.reject(err);
    }
    for (const r of rooms) {
      this._rooms.delete(r);
      this._offsets.delete(r);
    }
    return this._request("leave", { rooms }, opts, ackData);
  }

  /** Asks who is in a presence room (the client must be a member); resolves
   * with {event:"presence", room, clients, users} or, for a room that is not
   * a presence room or not joined, {room?, rooms:[], refused:[…]}. */
  presence(room, opts = {}) {
    return this._request("presence", { room }, opts, (frame) => frame.data || {});
  }

  /** Sends "refresh" with fresh credentials (the refresh option, else the
   * credentials or token callback) and resolves with the "refreshed" data
   * ({expiresAt?}); rejects with ServerError("Refresh failed"). Called on
   * "session-expiring" by itself. */
  async refresh(opts = {}) {
    const data = await this._credentials(true);
    return this._request("refresh", data, opts, (frame) => frame.data || {});
  }

  // --- connection ---------------------------------------------------------

  async _open() {
    this.state = "connecting";
    this._timer = null;
    const conn = {
      ws: null,
      connected: false,
      ready: false, // connected and rejoined: queued requests may go
      key: null,
      keyPair: null,
      encrypt: false,
      inbound: Promise.resolve(),
      outbound: Promise.resolve(),
      heartbeat: null,
      connectTimer: null,
      lastServerError: undefined,
      refused: null, // why the client refused the handshake
      closed: false,
    };
    this._conn = conn;
    let authData;
    try {
      conn.encrypt = await this._encryptWanted();
      authData = await this._credentials(false);
      if (conn.encrypt) {
        conn.keyPair = await crypto.subtle.generateKey(ECDH_PARAMS, false, ["deriveBits"]);
        const raw = await crypto.subtle.exportKey("raw", conn.keyPair.publicKey);
        authData = { ...authData, publicKey: toBase64(new Uint8Array(raw)) };
      }
    } catch (err) {
      if (this._conn !== conn) return; // closed meanwhile
      this._emitError(err);
      this._closed(conn, { code: CloseCode.ABNORMAL, reason: "credentials failed: " + errText(err) });
      return;
    }
    if (this._conn !== conn) return;
    const WS = this.options.WebSocket || globalThis.WebSocket;
    if (typeof WS !== "function") {
      this._stop(new CloseError(0, "", undefined,
        "no WebSocket: pass options.WebSocket (Node 20 needs --experimental-websocket; Node ≥ 22 has it)"));
      return;
    }
    let ws;
    try {
      ws = new WS(this.url);
    } catch (err) {
      this._stop(new CloseError(0, "", undefined, "cannot open WebSocket: " + errText(err)));
      return;
    }
    conn.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      conn.inbound = conn.inbound
        .then(() => (this._conn === conn ? this._receive(conn, ev.data) : undefined))
        .catch((err) => this._emitError(err));
    };
    let opened = false;
    ws.onopen = () => {
      opened = true;
      if (this._conn === conn) ws.send(JSON.stringify({ event: "authenticate", data: authData }));
    };
    ws.onerror = () => {
      // Browsers follow an error with a close event that has the code.
      // Node 20's WebSocket does not when the handshake fails (refused
      // connection, non-101 answer): end the attempt here then.
      if (!opened) conn.inbound = conn.inbound.then(() => this._closed(conn, { code: CloseCode.ABNORMAL, reason: "" }));
    };
    ws.onclose = (ev) => {
      // After every frame that came before it.
      conn.inbound = conn.inbound.then(() => this._closed(conn, { code: ev.code, reason: ev.reason || "" }));
    };
    // An attempt that neither fails nor gets "connected" in time (a server
    // that accepts and hangs) is given up and retried.
    const limit = this.options.connectTimeout ?? DEFAULTS.connectTimeout;
    if (limit > 0) {
      conn.connectTimer = setTimeout(() => {
        if (conn.connected || conn.closed) return;
        this._closed(conn, { code: CloseCode.ABNORMAL, reason: "connect timeout" });
        try {
          ws.close();
        } catch {
          // already closing
        }
      }, limit);
    }
  }

  async _encryptWanted() {
    const e = this.options.encrypt;
    if (typeof e === "function") return Boolean(await e());
    return Boolean(e);
  }

  // _credentials returns the authenticate (or refresh) payload.
  async _credentials(refresh) {
    const o = this.options;
    let data;
    if (refresh && typeof o.refresh === "function") data = await o.refresh();
    else if (o.credentials !== undefined) data = typeof o.credentials === "function" ? await o.credentials() : o.credentials;
    else if (o.token !== undefined) data = { token: typeof o.token === "function" ? await o.token() : o.token };
    else data = {};
    if (data === null || typeof data !== "object") throw new TypeError("credentials must be an object");
    return data;
  }

  _refreshable() {
    const o = this.options;
    return typeof o.refresh === "function" || typeof o.credentials === "function" || typeof o.token === "function";
  }

  async _receive(conn, raw) {
    const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      throw new Error("frame from the server is not JSON");
    }
    if (msg === null || typeof msg !== "object" || typeof msg.event !== "string") {
      throw new Error("frame from the server is not an event object");
    }
    let encrypted = false;
    if (msg.event === "encrypted") {
      if (!conn.key) throw new Error("encrypted frame on a connection without a key");
      const inner = await this._decrypt(conn, msg.data);
      // The id (and room/offset) may ride outside the envelope.
      for (const k of ["id", "room", "offset"]) if (inner[k] === undefined && msg[k] !== undefined) inner[k] = msg[k];
      msg = inner;
      encrypted = true;
    }
    const frame = { event: msg.event, data: msg.data, encrypted };
    if (typeof msg.id === "string" && msg.id !== "") frame.id = msg.id;
    if (typeof msg.room === "string") frame.room = msg.room;
    if (typeof msg.offset === "string") frame.offset = msg.offset;

    switch (frame.event) {
      case "connected":
        if (!encrypted) await this._onConnected(conn, frame.data || {});
        return;
      case "error": {
        const message = frame.data && typeof frame.data.message === "string" ? frame.data.message : "error";
        if (this._settleId(frame.id, new ServerError(message, frame.id))) return;
        conn.lastServerError = message;
        this._emitError(new ServerError(message, frame.id));
        return;
      }
      case "ack":
      case "refreshed":
        this._settleId(frame.id, null, frame);
        if (frame.event === "refreshed") this._emit("refreshed", frame.data || {});
        return;
      case "session-expiring":
        this._emit("session-expiring", frame.data || {});
        if (this._refreshable()) this.refresh().catch((err) => this._emitError(err));
        return;
      case "gap":
        this._emit("gap", frame.data || {});
        return;
    }
    if (conn.key && !encrypted) {
      // An encrypted connection gets every application frame sealed; a
      // plaintext one did not come from the server's transformer.
      this._emitError(new Error(`plaintext "${frame.event}" frame on an encrypted connection dropped`));
      return;
    }
    if (frame.room !== undefined && frame.offset !== undefined && this._rooms.has(frame.room)) {
      this._offsets.set(frame.room, frame.offset);
    }
    if (this._settleId(frame.id, null, frame)) return;
    if (frame.event === "presence") {
      this._emit("presence", frame.data || {}, frame);
    } else {
      this._emit(frame.event, frame.data, frame);
    }
    this._emit("*", frame);
  }

  async _onConnected(conn, data) {
    if (conn.connected) return;
    if (conn.encrypt) {
      const pinned = this.options.serverPublicKey;
      if (typeof data.serverPublicKey !== "string" || typeof data.salt !== "string") {
        this._refuse(conn, "server did not complete the encryption handshake");
        return;
      }
      if (pinned !== undefined && pinned !== null && pinned !== data.serverPublicKey) {
        this._refuse(conn, "server public key does not match the pinned key");
        return;
      }
      try {
        conn.key = await deriveMessageKey(conn.keyPair.privateKey, data.serverPublicKey, data.salt);
      } catch (err) {
        this._refuse(conn, "encryption handshake: " + errText(err));
        return;
      }
    }
    const reconnected = this.clientId !== null;
    this.clientId = data.id ?? null;
    this.userId = data.userId ?? null;
    this.encrypted = Boolean(conn.key);
    conn.connected = true;
    clearTimeout(conn.connectTimer);
    this._connected = data;
    this.state = "connected";
    this._attempt = 0;
    this._startHeartbeat(conn);
    this._emit("connected", { ...data, reconnected, encrypted: this.encrypted });
    const waiters = this._waiters.splice(0);
    for (const w of waiters) w.resolve(data);
    // Rejoin, then let queued requests go: a request made while
    // disconnected may depend on the rooms.
    if (this._rooms.size > 0) this._rejoin(conn);
    else this._ready(conn);
  }

  async _rejoin(conn) {
    const rooms = [...this._rooms];
    const size = this.options.maxRoomsPerRequest || DEFAULTS.maxRoomsPerRequest;
    const result = { rooms: [], refused: [], recovered: {} };
    try {
      for (let i = 0; i < rooms.length; i += size) {
        const batch = rooms.slice(i, i + size);
        const data = { rooms: batch };
        const since = pick(this._offsets, batch);
        if (since) data.since = since;
        const ack = await this._send(conn, "join", data, this._timeout({}), ackData);
        result.rooms.push(...ack.rooms);
        result.refused.push(...ack.refused);
        for (const r of ack.rooms) {
          // Anything but the server's explicit true means messages sent
          // while the client was away may be lost: reload the room's state.
          result.recovered[r] = Boolean(ack.recovered && ack.recovered[r] === true);
          if (!result.recovered[r]) this._offsets.delete(r);
        }
      }
    } catch (err) {
      if (this._conn !== conn || conn.closed) return; // the close reports it
      this._emitError(new Error("rejoin failed: " + errText(err)));
      this._ready(conn);
      return;
    }
    // A room the server refuses now (validator changed its mind) is no
    // longer the app's; one left meanwhile stays left.
    for (const { room } of result.refused) {
      this._rooms.delete(room);
      this._offsets.delete(room);
    }
    this._emit("rejoined", result);
    this._ready(conn);
  }

  _ready(conn) {
    if (this._conn !== conn || conn.closed) return;
    conn.ready = true;
    const queued = this._queue.splice(0);
    for (const q of queued) q.start(conn);
  }

  _refuse(conn, message) {
    conn.refused = message;
    this._emitError(new Error(message));
    try {
      conn.ws.close(CloseCode.NORMAL, "client refused handshake");
    } catch {
      conn.ws.close();
    }
  }

  // _closed handles the end of conn's socket (or of an attempt that never
  // got one) and decides whether to try again.
  _closed(conn, { code, reason }) {
    if (conn.closed) return;
    const wasConnected = conn.connected;
    this._endConn(conn);
    if (this._conn !== conn) return; // replaced or closed by the app
    this._conn = null;
    const serverMessage = conn.lastServerError;
    const info = { code, reason, serverMessage, wasConnected, willReconnect: false };
    if (conn.refused) {
      info.refused = conn.refused;
      this._stop(new CloseError(code, reason, serverMessage, conn.refused), info);
      return;
    }
    const policy = this.options.shouldReconnect || defaultShouldReconnect;
    const ctx = {
      reason, serverMessage, wasConnected, attempt: this._attempt,
      refreshable: this._refreshable(), encryptDynamic: typeof this.options.encrypt === "function",
    };
    const max = this.options.reconnect === false ? 0 : this.options.maxReconnectAttempts ?? DEFAULTS.maxReconnectAttempts;
    let again = false;
    try {
      again = this._attempt < max && Boolean(policy(code, ctx));
    } catch (err) {
      this._emitError(err);
    }
    if (!again) {
      this._stop(new CloseError(code, reason, serverMessage), info);
      return;
    }
    const delay = this._backoff(this._attempt);
    this._attempt++;
    info.willReconnect = true;
    info.delay = delay;
    info.attempt = this._attempt;
    this.state = "waiting";
    this._emit("disconnected", info);
    this._timer = setTimeout(() => this._open(), delay);
  }

  // _endConn releases what conn holds: its heartbeat, its key and the
  // requests in flight on it.
  _endConn(conn) {
    if (conn.closed) return;
    conn.closed = true;
    conn.connected = false;
    conn.ready = false;
    conn.key = null;
    clearTimeout(conn.connectTimer);
    if (conn.heartbeat !== null) clearInterval(conn.heartbeat);
    conn.heartbeat = null;
    for (const entry of [...this._pending.values()]) {
      if (entry.conn === conn) this._settle(entry, new CloseError(0, "", conn.lastServerError, "connection closed before the answer"));
    }
  }

  // _stop ends the client for good.
  _stop(err, info) {
    if (this.state === "closed") return;
    this.state = "closed";
    this._stopped = err;
    this._conn = null;
    for (const w of this._waiters.splice(0)) w.reject(err);
    for (const q of this._queue.splice(0)) this._settle(q.entry, err);
    if (info) this._emit("disconnected", info);
  }

  // _backoff: full jitter over an exponential window.
  _backoff(attempt) {
    const min = this.options.minReconnectDelay ?? DEFAULTS.minReconnectDelay;
    const max = this.options.maxReconnectDelay ?? DEFAULTS.maxReconnectDelay;
    const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
    return Math.round(Math.random() * ceiling);
  }

  _startHeartbeat(conn) {
    const interval = this.options.heartbeatInterval ?? DEFAULTS.heartbeatInterval;
    if (!(interval > 0)) return;
    conn.heartbeat = setInterval(() => {
      // Plaintext on purpose: a heartbeat carries nothing to hide.
      if (conn.ws.readyState === WS_OPEN) conn.ws.send('{"event":"heartbeat"}');
    }, interval);
  }

  // --- requests ------------------------------------------------------------

  _timeout(opts) {
    return opts.timeout ?? this.options.requestTimeout ?? DEFAULTS.requestTimeout;
  }

  // _request sends a frame with a fresh id on the ready connection, or when
  // one is ready, and resolves with map(answer).
  _request(event, data, opts, map) {
    if (this._stopped) return Promise.reject(this._stopped);
    const ms = this._timeout(opts);
    return new Promise((resolve, reject) => {
      const entry = this._entry(event, ms, map, resolve, reject);
      const start = (conn) => this._start(entry, conn, event, data);
      const conn = this._conn;
      if (conn && conn.ready) start(conn);
      else {
        const q = { entry, start };
        entry.queued = q;
        this._queue.push(q);
        if (this.state === "idle") this._open();
      }
    });
  }

  // _send is _request on a given connection, without the queue (rejoin).
  _send(conn, event, data, ms, map) {
    return new Promise((resolve, reject) => {
      this._start(this._entry(event, ms, map, resolve, reject), conn, event, data);
    });
  }

  _entry(event, ms, map, resolve, reject) {
    const entry = { id: String(++this._seq), conn: null, map, resolve, reject, done: false, queued: null };
    entry.timer = setTimeout(() => this._settle(entry, new TimeoutError(event, ms)), ms);
    return entry;
  }

  _start(entry, conn, event, data) {
    if (entry.done) return;
    entry.conn = conn;
    this._pending.set(entry.id, entry);
    const frame = data === undefined ? { event, id: entry.id } : { event, data, id: entry.id };
    this._write(conn, frame).catch((err) => this._settle(entry, err));
  }

  // _settleId settles the request with that id; false if there is none.
  _settleId(id, err, frame) {
    if (id === undefined) return false;
    const entry = this._pending.get(id);
    if (!entry) return false;
    if (err) this._settle(entry, err);
    else {
      let value;
      try {
        value = entry.map(frame);
      } catch (e) {
        this._settle(entry, e);
        return true;
      }
      this._settle(entry, null, value);
    }
    return true;
  }

  _settle(entry, err, value) {
    if (entry.done) return;
    entry.done = true;
    clearTimeout(entry.timer);
    this._pending.delete(entry.id);
    if (entry.queued) {
      const i = this._queue.indexOf(entry.queued);
      if (i >= 0) this._queue.splice(i, 1);
    }
    if (err) entry.reject(err);
    else entry.resolve(value);
  }

  // _write sends frame on conn, sealed when conn has a key; writes of one
  // connection leave in call order.
  _write(conn, frame) {
    const key = conn.key;
    const next = conn.outbound.then(async () => {
      let out;
      if (key) {
        const { id, ...inner } = frame;
        const iv = crypto.getRandomValues(new Uint8Array(IV_SIZE));
        const ct = await crypto.subtle.encrypt(this._gcmParams(iv), key, new TextEncoder().encode(JSON.stringify(inner)));
        const env = { event: "encrypted", data: { iv: toBase64(iv), ct: toBase64(new Uint8Array(ct)) } };
        if (id !== undefined) env.id = id;
        out = JSON.stringify(env);
      } else {
        out = JSON.stringify(frame);
      }
      if (conn.closed || conn.ws.readyState !== WS_OPEN) throw new Error("connection is closed");
      conn.ws.send(out);
    });
    conn.outbound = next.catch(() => {});
    return next;
  }

  async _decrypt(conn, data) {
    if (data === null || typeof data !== "object" || typeof data.iv !== "string" || typeof data.ct !== "string") {
      throw new Error("encrypted frame without iv and ct");
    }
    const iv = fromBase64(data.iv);
    if (iv.length !== IV_SIZE) throw new Error("encrypted frame with a bad iv");
    const plain = await crypto.subtle.decrypt(this._gcmParams(iv), conn.key, fromBase64(data.ct));
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

  // --- events ----------------------------------------------------------------

  _emitError(err) {
    this._emit("error", err instanceof Error ? err : new Error(String(err)));
  }

  _emit(event, ...args) {
    const set = this._handlers.get(event);
    if (!set || set.size === 0) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A handler must not break the frame chain or the other handlers.
        if (typeof globalThis.reportError === "function") globalThis.reportError(err);
        else console.error(err);
      }
    }
  }
}

/** Creates a WSClient and resolves with it once it is connected (see
 * WSClient.connect for when it rejects). Handlers for the first "connected"
 * go in options.on. */
export async function connect(url, options = {}) {
  const client = new WSClient(url, options);
  await client.connect();
  return client;
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

function roomList(rooms) {
  if (typeof rooms === "string") rooms = [rooms];
  if (!Array.isArray(rooms) || rooms.some((r) => typeof r !== "string")) {
    throw new TypeError("rooms must be a string or an array of strings");
  }
  return rooms;
}

// ackData returns an ack's data with rooms and refused always arrays.
function ackData(frame) {
  const d = (frame && frame.data) || {};
  const out = { ...d, rooms: Array.isArray(d.rooms) ? d.rooms : [], refused: Array.isArray(d.refused) ? d.refused : [] };
  return out;
}

// pick returns {room: offset} for the rooms with an offset, or undefined.
function pick(offsets, rooms) {
  let out;
  for (const r of rooms) {
    if (offsets.has(r)) (out ||= {})[r] = offsets.get(r);
  }
  return out;
}

function errText(err) {
  return String((err && err.message) || err);
}
