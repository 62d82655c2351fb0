// PENDING (see history_test.go next to this file): recovery against the
// real server once it keeps history (SPEC §9.5).
import "./node-env.mjs"; // first: the globals an older Node lacks
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../wscomponent.js";
import { WS_URL, baseOptions, ctl, next, record } from "./lib.mjs";

test("missed messages are replayed after a server restart", async () => {
  const client = await connect(WS_URL, baseOptions({ token: async () => "user:hist" }));
  try {
    await client.join("h-room");
    const got = record(client, "news");
    const third = next(client, "news", (d) => d.n === 3);
    for (let n = 1; n <= 3; n++) await ctl("POST", "/publish?room=h-room&event=news", { n });
    await third;
    assert.ok(client.offsets["h-room"], "frames of a history room carry offsets");

    const rejoined = next(client, "rejoined");
    // Down for a while; meanwhile the second instance publishes 4..103.
    const restarting = ctl("POST", "/restart?downMs=1500");
    for (let n = 4; n <= 103; n++) await ctl("POST", "/publish-second?room=h-room&event=news", { n });
    await restarting;
    const [result] = await rejoined;
    assert.deepEqual(result.recovered, { "h-room": true });
    const last = next(client, "news", (d) => d.n === 104);
    await ctl("POST", "/publish?room=h-room&event=news", { n: 104 });
    await last;
    assert.deepEqual(got.map((d) => d.n), Array.from({ length: 104 }, (_, i) => i + 1));
  } finally {
    client.close();
  }
});

test("a Redis restart without persistence: recovered false", async () => {
  const client = await connect(WS_URL, baseOptions({ token: async () => "user:epoch" }));
  try {
    await client.join("h-epoch");
    const first = next(client, "news");
    await ctl("POST", "/publish?room=h-epoch&event=news", { n: 1 });
    await first;
    await ctl("POST", "/redis/kill");
    await ctl("POST", "/redis/restart");
    const rejoined = next(client, "rejoined");
    await ctl("POST", "/restart?downMs=100");
    const [result] = await rejoined;
    assert.deepEqual(result.recovered, { "h-epoch": false });
  } finally {
    client.close();
  }
});
