// Shared helpers of the Node test scripts. The Go tests (../*_test.go) start
// the server and pass WS_URL, CTL_URL and, for an encrypted server,
// SERVER_PUBLIC_KEY.
import assert from "node:assert/strict";

export const WS_URL = process.env.WS_URL;
export const CTL_URL = process.env.CTL_URL;
export const SERVER_PUBLIC_KEY = process.env.SERVER_PUBLIC_KEY;
assert.ok(WS_URL && CTL_URL, "run these scripts through go test ./clients/js");

/** A wait longer than this fails the test instead of hanging it. */
export const WAIT_MS = 10000;

/** Options every test client starts from: heartbeats well inside the
 * server's 800 ms timeout, quick reconnects. */
export function baseOptions(extra = {}) {
  return { heartbeatInterval: 200, minReconnectDelay: 50, maxReconnectDelay: 500, requestTimeout: 5000, ...extra };
}

/** Calls the test server's control endpoint (see harness_test.go). */
export async function ctl(method, path, body) {
  const res = await fetch(CTL_URL + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${out.error}`);
  return out;
}

/** Resolves with the arguments of the next emission of event on client
 * that match accepts (all of them when omitted); rejects after ms. */
export function next(client, event, accept = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${event}" event within ${ms} ms`));
    }, ms);
    const off = client.on(event, (...args) => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/** Collects every emission of event on client (the first argument). */
export function record(client, event) {
  const seen = [];
  client.on(event, (arg) => seen.push(arg));
  return seen;
}

/** Resolves after ms; only where the test asserts that nothing happens in
 * a span of time. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
