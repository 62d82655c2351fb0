// The client against a RequireEncryption server with server/encryption's
// Pair (TestNodeEncryption).
import "./node-env.mjs"; // first: the globals an older Node lacks
import { test } from "node:test";
import assert from "node:assert/strict";
import { WSClient, connect, CloseError, ServerError } from "../wscomponent.js";
import { WS_URL, SERVER_PUBLIC_KEY, baseOptions, ctl, next, record } from "./lib.mjs";

assert.ok(SERVER_PUBLIC_KEY, "the server's public key is passed in");

const encrypted = (extra) => baseOptions({ encrypt: true, serverPublicKey: SERVER_PUBLIC_KEY, ...extra });

test("handshake, encrypted requests, acks and room messages", async () => {
  const a = await connect(WS_URL, encrypted({ token: "user:enc-a" }));
  const b = await connect(WS_URL, encrypted({ token: "user:enc-b" }));
  try {
    assert.equal(a.encrypted, true);
    const info = await ctl("GET", `/client?id=${a.clientId}`);
    assert.deepEqual([info.found, info.encrypted], [true, true]);

    // The join travels sealed, the ack comes back in plaintext with its id.
    const ack = await a.join(["vault", "no-go"]);
    assert.deepEqual([ack.rooms, ack.refused], [["vault"], [{ room: "no-go", reason: "not allowed" }]]);
    await b.join("vault");

    // A reply is sealed by the transformer, with the id outside.
    const reply = await a.request("echo", { secret: "ü" });
    assert.deepEqual([reply.event, reply.data, reply.encrypted], ["echo", { secret: "ü" }, true]);
    await assert.rejects(a.request("fail", {}), (e) => e instanceof ServerError && e.message === "no such thing");

    const frames = record(b, "*");
    const said = next(b, "said");
    await a.send("say", { room: "vault", text: "sealed both ways" });
    assert.equal((await said)[0].text, "sealed both ways");
    assert.equal(frames[0].encrypted, true);

    const news = next(a, "news");
    await ctl("POST", "/publish?room=vault&event=news", { from: "Go" });
    const [data, frame] = await news;
    assert.deepEqual([data, frame.encrypted], [{ from: "Go" }, true]);
  } finally {
    a.close();
    b.close();
  }
});

test("a wrong pinned key is refused and not retried", async () => {
  const client = new WSClient(WS_URL, encrypted({ token: "user:pinned", serverPublicKey: "B".repeat(87) + "=" }));
  const drops = record(client, "disconnected");
  await assert.rejects(client.connect(), (err) => err instanceof CloseError && /pinned/.test(err.message));
  assert.equal(client.state, "closed");
  assert.equal(drops.length, 1);
  assert.equal(drops[0].willReconnect, false);
});

test("a plaintext client gets 4004 and stops", async () => {
  const client = new WSClient(WS_URL, baseOptions({ token: "user:plain" }));
  await assert.rejects(client.connect(), (err) => {
    assert.equal(err.code, 4004);
    assert.equal(err.serverMessage, "Encryption handshake failed");
    return true;
  });
});

test("encrypt as a function is asked on every attempt, and 4004 then retries", async () => {
  let asked = 0;
  const client = await connect(WS_URL, baseOptions({ token: "user:flip", encrypt: () => ++asked > 1 }));
  try {
    assert.equal(asked, 2); // refused in plaintext (4004), then encrypted
    assert.equal(client.encrypted, true);
  } finally {
    client.close();
  }
});

test("after a restart: a fresh key, the rooms again, sealed messages", async () => {
  const client = await connect(WS_URL, encrypted({ token: "user:enc-restart" }));
  try {
    await client.join("vault2");
    const rejoined = next(client, "rejoined");
    await ctl("POST", "/restart?downMs=200");
    const [result] = await rejoined;
    assert.deepEqual([result.rooms, result.recovered], [["vault2"], { vault2: false }]);
    assert.equal(client.encrypted, true);
    const news = next(client, "news");
    await ctl("POST", "/publish?room=vault2&event=news", { again: true });
    assert.deepEqual((await news)[1].encrypted, true);
  } finally {
    client.close();
  }
});
