// The client against a plain server (TestNodeClient): authentication,
// join/leave acks, requests with ids, events, presence, heartbeats, session
// refresh and the server-decided closes.
import "./node-env.mjs"; // first: the globals an older Node lacks
import { test } from "node:test";
import assert from "node:assert/strict";
import { WSClient, connect, ServerError, TimeoutError, CloseError } from "../wscomponent.js";
import { WS_URL, baseOptions, ctl, next, record, sleep } from "./lib.mjs";

test("connects and authenticates", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:alice" }));
  try {
    assert.equal(client.state, "connected");
    assert.equal(client.userId, "alice");
    assert.match(client.clientId, /^[0-9a-f-]{36}$/);
    assert.equal(client.encrypted, false);
    const info = await ctl("GET", `/client?id=${client.clientId}`);
    assert.deepEqual([info.found, info.userId, info.encrypted], [true, "alice", false]);
  } finally {
    client.close();
  }
});

test("a refused token stops with 4003 and does not reconnect", async () => {
  const client = new WSClient(WS_URL, baseOptions({ token: "nobody" }));
  const errors = record(client, "error");
  const disconnected = record(client, "disconnected");
  await assert.rejects(client.connect(), (err) => {
    assert.ok(err instanceof CloseError);
    assert.equal(err.code, 4003);
    assert.equal(err.reason, "Authentication failed");
    assert.equal(err.serverMessage, "Authentication failed");
    return true;
  });
  assert.equal(client.state, "closed");
  assert.deepEqual(disconnected.map((d) => [d.code, d.willReconnect]), [[4003, false]]);
  assert.deepEqual(errors.map((e) => e.message), ["Authentication failed"]);
  // Requests after the stop fail at once.
  await assert.rejects(client.request("echo", 1), CloseError);
});

test("credentials come from a callback on every connection", async () => {
  let calls = 0;
  const client = await connect(WS_URL, baseOptions({
    credentials: async () => {
      calls++;
      return { token: "user:cb" };
    },
  }));
  try {
    assert.equal(calls, 1);
    assert.equal(client.userId, "cb");
  } finally {
    client.close();
  }
});

test("join and leave resolve with the server's ack", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:bob" }));
  try {
    const ack = await client.join(["lobby", "no-entry", "lobby2"]);
    assert.deepEqual(ack.rooms.sort(), ["lobby", "lobby2"]);
    assert.deepEqual(ack.refused, [{ room: "no-entry", reason: "not allowed" }]);
    assert.equal(ack.event, "join");
    assert.deepEqual(client.rooms.sort(), ["lobby", "lobby2"]);
    const info = await ctl("GET", `/client?id=${client.clientId}`);
    assert.ok(info.rooms.includes("lobby") && info.rooms.includes("lobby2"), JSON.stringify(info.rooms));

    const left = await client.leave("lobby2");
    assert.deepEqual([left.event, left.rooms, left.refused], ["leave", ["lobby2"], []]);
    assert.deepEqual(client.rooms, ["lobby"]);
    const notMember = await client.leave(["never-joined"]);
    assert.deepEqual(notMember.refused, [{ room: "never-joined", reason: "not a member" }]);

    await assert.rejects(client.join(42), TypeError);
  } finally {
    client.close();
  }
});

test("requests resolve with the reply of the same id or reject with the error", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:carol" }));
  try {
    const replies = await Promise.all([client.request("echo", { n: 1 }), client.request("echo", { n: 2 })]);
    assert.deepEqual(replies.map((f) => [f.event, f.data]), [["echo", { n: 1 }], ["echo", { n: 2 }]]);
    assert.notEqual(replies[0].id, replies[1].id);

    await assert.rejects(client.request("fail", {}), (err) => err instanceof ServerError && err.message === "no such thing");
    await assert.rejects(client.request("boom", {}), (err) => err instanceof ServerError && err.message === "Internal error");
    const started = Date.now();
    await assert.rejects(client.request("silent", {}, { timeout: 300 }), TimeoutError);
    assert.ok(Date.now() - started >= 290);
    // The connection is fine after all that.
    assert.deepEqual((await client.request("echo", "still here")).data, "still here");
  } finally {
    client.close();
  }
});

test("application events arrive by name", async () => {
  const a = await connect(WS_URL, baseOptions({ token: "user:dave" }));
  const b = await connect(WS_URL, baseOptions({ token: "user:erin" }));
  try {
    await a.join("events");
    await b.join("events");
    const all = record(b, "*");
    const said = next(b, "said");
    await a.send("say", { room: "events", text: "hello" });
    const [data, frame] = await said;
    assert.deepEqual(data, { room: "events", text: "hello" });
    assert.equal(frame.event, "said");

    const news = next(a, "news");
    await ctl("POST", "/publish?room=events&event=news", { headline: "from Go" });
    assert.deepEqual((await news)[0], { headline: "from Go" });
    assert.ok(all.some((f) => f.event === "said"), "the * handler saw the frame");
    await assert.rejects(new WSClient(WS_URL).send("x"), /not connected/);
  } finally {
    a.close();
    b.close();
  }
});

test("presence: the request and the events", async () => {
  const a = await connect(WS_URL, baseOptions({ token: "user:pa" }));
  const b = await connect(WS_URL, baseOptions({ token: "user:pb" }));
  try {
    await a.join("p-room");
    const joined = next(a, "presence", (d) => d.action === "join" && d.clientId === b.clientId);
    await b.join("p-room");
    const who = await a.presence("p-room");
    assert.equal(who.room, "p-room");
    assert.deepEqual(who.clients.map((c) => c.clientId).sort(), [a.clientId, b.clientId].sort());
    assert.equal(who.users, 2);
    const [ev] = await joined;
    assert.deepEqual(ev, { room: "p-room", action: "join", clientId: b.clientId, userId: "pb" });
    const refused = await a.presence("p-elsewhere");
    assert.deepEqual(refused.refused, [{ room: "p-elsewhere", reason: "not a member" }]);
  } finally {
    a.close();
    b.close();
  }
});

test("heartbeats keep the connection; without them the server closes 4002 and the client reconnects", async () => {
  const alive = await connect(WS_URL, baseOptions({ token: "user:beat" }));
  const silent = await connect(WS_URL, baseOptions({ token: "user:mute", heartbeatInterval: 0 }));
  try {
    const aliveDrops = record(alive, "disconnected");
    const dropped = next(silent, "disconnected");
    const back = next(silent, "connected", (d) => d.reconnected);
    const [info] = await dropped;
    assert.deepEqual([info.code, info.reason, info.willReconnect, info.wasConnected], [4002, "Heartbeat timeout", true, true]);
    await back;
    assert.equal(silent.state, "connected");
    // The heartbeating client outlived the silent one's timeout.
    assert.deepEqual(aliveDrops, []);
    assert.equal(alive.state, "connected");
  } finally {
    alive.close();
    silent.close();
  }
});

test("session-expiring calls the refresh callback and the session goes on", async () => {
  let refreshes = 0;
  const client = await connect(WS_URL, baseOptions({
    token: "user:sess:1500ms",
    refresh: async () => {
      refreshes++;
      return { token: "user:sess:1h" };
    },
  }));
  try {
    const drops = record(client, "disconnected");
    const [expiring] = await next(client, "session-expiring");
    assert.ok(Date.parse(expiring.expiresAt) > Date.now() - 5000, expiring.expiresAt);
    const [refreshed] = await next(client, "refreshed");
    assert.equal(refreshes, 1);
    assert.ok(Date.parse(refreshed.expiresAt) > Date.now() + 30 * 60 * 1000, refreshed.expiresAt);
    await sleep(1500); // past the first expiry: no 4006
    assert.deepEqual(drops, []);
    // refresh() by hand resolves with the refreshed data.
    const again = await client.refresh();
    assert.ok(Date.parse(again.expiresAt) > Date.now());
  } finally {
    client.close();
  }
});

test("a refused refresh is an error; 4006 reconnects when credentials come from a callback", async () => {
  let connects = 0;
  const client = await connect(WS_URL, baseOptions({
    token: async () => (++connects === 1 ? "user:short:1500ms" : "user:short:1h"),
    refresh: async () => ({ token: "user:someone-else" }),
  }));
  try {
    const [err] = await next(client, "error", (e) => e instanceof ServerError);
    assert.equal(err.message, "Refresh failed");
    const [info] = await next(client, "disconnected");
    assert.deepEqual([info.code, info.reason, info.willReconnect], [4006, "Session expired", true]);
    await next(client, "connected", (d) => d.reconnected);
    assert.equal(connects, 2);
  } finally {
    client.close();
  }
});

test("4006 with fixed credentials stops", async () => {
  const client = await connect(WS_URL, baseOptions({ credentials: { token: "user:fixed:1200ms" } }));
  const [info] = await next(client, "disconnected");
  assert.deepEqual([info.code, info.willReconnect], [4006, false]);
  assert.equal(client.state, "closed");
});

test("a disconnect decided by the server stops reconnecting", async () => {
  for (const [code, reason] of [[4005, "Disconnected"], [4100, "Moved elsewhere"]]) {
    const client = await connect(WS_URL, baseOptions({ token: "user:kicked" }));
    const dropped = next(client, "disconnected");
    await ctl("POST", `/disconnect?user=kicked&code=${code}&reason=${encodeURIComponent(reason)}`);
    const [info] = await dropped;
    assert.deepEqual([info.code, info.reason, info.willReconnect], [code, reason, false]);
    assert.equal(client.state, "closed");
  }
});

test("shouldReconnect overrides the policy", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:stubborn", shouldReconnect: () => true }));
  try {
    const dropped = next(client, "disconnected");
    const back = next(client, "connected", (d) => d.reconnected);
    await ctl("POST", "/disconnect?user=stubborn&code=4005&reason=Disconnected");
    assert.equal((await dropped)[0].willReconnect, true);
    await back;
  } finally {
    client.close();
  }
});
