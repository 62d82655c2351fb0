// The client rides out a server restart and a Redis outage
// (TestNodeReconnect).
import "./node-env.mjs"; // first: the globals an older Node lacks
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../wscomponent.js";
import { WS_URL, baseOptions, ctl, next, record } from "./lib.mjs";

test("a server restart: reconnect, re-authenticate, rejoin, carry on", async () => {
  let credentialCalls = 0;
  const client = await connect(WS_URL, baseOptions({
    token: async () => {
      credentialCalls++;
      return "user:phoenix";
    },
  }));
  const other = await connect(WS_URL, baseOptions({ token: "user:witness" }));
  try {
    await client.join(["lobby", "p-phoenix"]);
    await other.join("lobby");
    const firstID = client.clientId;
    const drops = record(client, "disconnected");
    const rejoined = next(client, "rejoined");
    const otherBack = next(other, "rejoined");
    const news = record(client, "news");

    // Down for 600 ms: the first attempts are refused (1006) and retried.
    await ctl("POST", "/restart?downMs=600");
    // A request made while the client is away waits for the connection.
    const queued = client.request("echo", "made while away");

    const [result] = await rejoined;
    assert.deepEqual(result.rooms.sort(), ["lobby", "p-phoenix"]);
    assert.deepEqual(result.refused, []);
    // Today's server keeps no history: nothing was recovered, and the
    // client says so per room, so the app reloads those rooms.
    assert.deepEqual(result.recovered, { lobby: false, "p-phoenix": false });
    assert.equal((await queued).data, "made while away");

    assert.equal(drops[0].code, 1001);
    assert.equal(drops[0].reason, "Server shutting down");
    assert.equal(drops[0].willReconnect, true);
    assert.ok(drops.every((d) => d.willReconnect), JSON.stringify(drops));
    assert.ok(drops.length >= 2, `attempts while the server was down: ${JSON.stringify(drops)}`);
    assert.equal(drops.at(-1).code, 1006);
    assert.ok(credentialCalls >= 2, `credentials asked ${credentialCalls} times`);
    assert.notEqual(client.clientId, firstID);
    assert.equal(client.state, "connected");

    // The server sees the new connection in the rooms.
    const info = await ctl("GET", `/client?id=${client.clientId}`);
    assert.ok(info.rooms.includes("lobby") && info.rooms.includes("p-phoenix"), JSON.stringify(info.rooms));
    const who = await client.presence("p-phoenix");
    assert.deepEqual(who.clients.map((c) => c.clientId), [client.clientId]);

    // And room messages flow again, to both reconnected clients.
    await otherBack;
    const got = next(client, "news");
    await ctl("POST", "/publish?room=lobby&event=news", { n: 1 });
    assert.deepEqual((await got)[0], { n: 1 });
    assert.equal(news.length, 1);
  } finally {
    client.close();
    other.close();
  }
});

test("Redis killed and back: the connection and its rooms keep working", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:steady" }));
  try {
    await client.join("steady");
    const drops = record(client, "disconnected");
    await ctl("POST", "/redis/kill");
    // Local traffic goes on without Redis.
    assert.equal((await client.request("echo", "no redis")).data, "no redis");
    await ctl("POST", "/redis/restart");
    const got = next(client, "news");
    await ctl("POST", "/publish?room=steady&event=news", { after: "redis" });
    assert.deepEqual((await got)[0], { after: "redis" });
    // A message through Redis from a client's request, too.
    const said = next(client, "said");
    await client.send("say", { room: "steady", text: "via redis" });
    assert.equal((await said)[0].text, "via redis");
    assert.deepEqual(drops, []);
  } finally {
    client.close();
  }
});

test("maxReconnectAttempts: the client gives up and says so", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "user:quitter", maxReconnectAttempts: 2 }));
  const drops = record(client, "disconnected");
  const stopped = next(client, "disconnected", (d) => !d.willReconnect, 15000);
  await ctl("POST", "/restart?downMs=2500");
  const [last] = await stopped;
  assert.equal(last.code, 1006);
  assert.equal(client.state, "closed");
  assert.deepEqual(drops.map((d) => d.willReconnect), [true, true, false]);
  assert.deepEqual(drops.map((d) => d.attempt).slice(0, 2), [1, 2]);
});
