// A minimal WHATWG-style WebSocket client over node:http, for the test
// scripts on a Node without a global WebSocket (Debian bookworm's Node 18;
// Node 20 without --experimental-websocket). It covers what wscomponent.js
// uses: constructor(url[, protocols]), readyState and its constants,
// binaryType, send, close(code, reason), onopen/onmessage/onerror/onclose and
// addEventListener. RFC 6455 only as far as a test client needs it: masked
// client frames, text and binary messages with fragments reassembled, ping →
// pong, the close handshake; no extensions. Not for production use.
import http from "node:http";
import https from "node:https";
import { createHash, randomBytes } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
const OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xa;
// After our close frame, how long the server gets to close the TCP connection.
const CLOSE_TIMEOUT_MS = 5000;

export class NodeWebSocket extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;
  CONNECTING = CONNECTING;
  OPEN = OPEN;
  CLOSING = CLOSING;
  CLOSED = CLOSED;

  constructor(url, protocols = []) {
    super();
    const u = new URL(url);
    if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new SyntaxError(`not a ws: or wss: URL: ${url}`);
    if (u.hash) throw new SyntaxError("a WebSocket URL has no fragment");
    this.url = u.href;
    this.readyState = CONNECTING;
    this.binaryType = "blob";
    this.protocol = "";
    this.extensions = "";
    this.bufferedAmount = 0;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this._socket = null;
    this._buf = Buffer.alloc(0);
    this._fragments = null; // { opcode, parts } of a message still arriving
    this._closeSent = false;
    this._closeReceived = null; // { code, reason } from the server's close frame
    this._failed = false;
    this._closeTimer = null;

    const key = randomBytes(16).toString("base64");
    const headers = {
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": key,
    };
    const wanted = [].concat(protocols);
    if (wanted.length) headers["Sec-WebSocket-Protocol"] = wanted.join(", ");
    const secure = u.protocol === "wss:";
    const req = (secure ? https : http).request({
      hostname: u.hostname.replace(/^\[|\]$/g, ""), // an IPv6 literal without its brackets
      port: u.port || (secure ? 443 : 80),
      path: u.pathname + u.search,
      headers,
      agent: false,
    });
    req.on("response", (res) => {
      res.resume();
      this._failHandshake(`unexpected HTTP ${res.statusCode} answer to the upgrade`);
    });
    req.on("error", (err) => this._failHandshake(err.message));
    req.on("upgrade", (res, socket, head) => {
      const want = createHash("sha1").update(key + GUID).digest("base64");
      if (res.headers["sec-websocket-accept"] !== want) {
        socket.destroy();
        return this._failHandshake("wrong Sec-WebSocket-Accept");
      }
      if (this.readyState !== CONNECTING) return socket.destroy(); // closed meanwhile
      this.protocol = res.headers["sec-websocket-protocol"] || "";
      this._socket = socket;
      socket.setNoDelay(true);
      socket.on("data", (chunk) => this._onData(chunk));
      socket.on("end", () => socket.end());
      socket.on("error", () => (this._failed = !this._closeReceived));
      socket.on("close", () => this._onSocketClose());
      this.readyState = OPEN;
      this._emit("open");
      if (head.length) this._onData(head);
    });
    req.end();
    this._req = req;
  }

  send(data) {
    if (this.readyState === CONNECTING) throw new DOMException("still connecting", "InvalidStateError");
    if (this.readyState !== OPEN || this._closeSent) return;
    if (typeof data === "string") this._write(OP_TEXT, Buffer.from(data, "utf8"));
    else if (data instanceof ArrayBuffer) this._write(OP_BINARY, Buffer.from(data));
    else if (ArrayBuffer.isView(data)) this._write(OP_BINARY, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    else this._write(OP_TEXT, Buffer.from(String(data), "utf8"));
  }

  close(code, reason = "") {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`close code ${code} is not 1000 or 3000–4999`, "InvalidAccessError");
    }
    const why = Buffer.from(String(reason), "utf8");
    if (why.length > 123) throw new DOMException("close reason longer than 123 bytes", "SyntaxError");
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    if (this.readyState === CONNECTING) {
      this.readyState = CLOSING;
      this._req.destroy();
      setImmediate(() => this._failHandshake("closed before the connection was established"));
      return;
    }
    this.readyState = CLOSING;
    this._sendClose(code === undefined ? Buffer.alloc(0) : Buffer.concat([u16(code), why]));
  }

  // _failHandshake ends a connection that never opened: error, then close 1006.
  _failHandshake(_why) {
    if (this.readyState === CLOSED || this._socket) return;
    this.readyState = CLOSED;
    this._emit("error");
    this._emit("close", { code: 1006, reason: "", wasClean: false });
  }

  // _fail drops an open connection on a protocol error: error, then close 1006.
  _fail() {
    this._failed = true;
    this._socket.destroy();
  }

  _sendClose(payload) {
    if (this._closeSent) return;
    this._closeSent = true;
    this._write(OP_CLOSE, payload);
    this._closeTimer = setTimeout(() => this._socket.destroy(), CLOSE_TIMEOUT_MS);
    this._closeTimer.unref();
  }

  _write(opcode, payload) {
    const n = payload.length;
    const len = n < 126 ? Buffer.from([0x80 | n]) : n < 65536 ? Buffer.concat([Buffer.from([0x80 | 126]), u16(n)]) : u64(n);
    const mask = randomBytes(4);
    const masked = Buffer.alloc(n);
    for (let i = 0; i < n; i++) masked[i] = payload[i] ^ mask[i & 3];
    this._socket.write(Buffer.concat([Buffer.from([0x80 | opcode]), len, mask, masked]));
  }

  _onData(chunk) {
    this._buf = this._buf.length ? Buffer.concat([this._buf, chunk]) : chunk;
    while (!this._failed && !this._closeReceived) {
      const b = this._buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0, opcode = b[0] & 0x0f;
      if ((b[0] & 0x70) || (b[1] & 0x80)) return this._fail(); // RSV bits or a masked server frame
      let n = b[1] & 0x7f, at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + n) return;
      const payload = b.subarray(at, at + n);
      this._buf = b.subarray(at + n);
      this._frame(fin, opcode, payload);
    }
  }

  _frame(fin, opcode, payload) {
    if (opcode >= OP_CLOSE) {
      if (!fin || payload.length > 125) return this._fail();
      if (opcode === OP_PING) {
        if (!this._closeSent) this._write(OP_PONG, payload);
      } else if (opcode === OP_CLOSE) {
        if (payload.length === 1) return this._fail();
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        let reason;
        try {
          reason = utf8(payload.subarray(2));
        } catch {
          return this._fail();
        }
        this._closeReceived = { code, reason };
        this.readyState = CLOSING;
        this._sendClose(payload.subarray(0, 2)); // echo the code: the server then closes TCP
      } else if (opcode !== OP_PONG) {
        return this._fail();
      }
      return;
    }
    if (opcode === OP_CONT) {
      if (!this._fragments) return this._fail();
      this._fragments.parts.push(payload);
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this._fragments) return this._fail();
      this._fragments = { opcode, parts: [payload] };
    } else {
      return this._fail();
    }
    if (!fin) return;
    const { opcode: op, parts } = this._fragments;
    this._fragments = null;
    const whole = Buffer.concat(parts);
    let data;
    if (op === OP_TEXT) {
      try {
        data = utf8(whole);
      } catch {
        return this._fail();
      }
    } else if (this.binaryType === "arraybuffer") {
      data = whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.length);
    } else {
      data = new Blob([whole]);
    }
    if (this.readyState === OPEN) this._emit("message", { data });
  }

  _onSocketClose() {
    clearTimeout(this._closeTimer);
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    const got = this._closeReceived;
    if (this._failed || !got) {
      if (this._failed) this._emit("error");
      this._emit("close", { code: 1006, reason: "", wasClean: false });
    } else {
      this._emit("close", { code: got.code, reason: got.reason, wasClean: this._closeSent });
    }
  }

  // _emit calls the on<type> handler, then the listeners. A handler's
  // exception is rethrown outside (an uncaught exception, as for listeners).
  _emit(type, props = {}) {
    const ev = Object.assign(new Event(type), props);
    const handler = this["on" + type];
    if (typeof handler === "function") {
      try {
        handler.call(this, ev);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
    this.dispatchEvent(ev);
  }
}

function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u64(n) {
  const b = Buffer.alloc(9);
  b[0] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const utf8 = (buf) => decoder.decode(buf);
