// The client's half of recovery (TestNodeRecoveryProtocol, against a
// scripted server): offsets remembered per room, "since" on the rejoin,
// "recovered" reported per room.
import "./node-env.mjs"; // first: the globals an older Node lacks
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../wscomponent.js";
import { WS_URL, baseOptions, next, record } from "./lib.mjs";

test("offsets, since and recovered", async () => {
  const client = await connect(WS_URL, baseOptions({ token: "t" }));
  try {
    const news = record(client, "news");
    const ack = await client.join(["hist", "gone", "plain"]);
    assert.deepEqual(ack.rooms, ["hist", "gone", "plain"]);
    await next(client, "news", (d) => d.n === 4);
    assert.deepEqual(client.offsets, { hist: "e1:2-0", gone: "e1:7-0" });

    const first = next(client, "rejoined");
    await client.send("next");
    const [r1] = await first;
    assert.deepEqual(r1.recovered, { hist: true, gone: false, plain: false });
    await next(client, "news", (d) => d.n === 5);
    // "gone" was not recovered: its offset is dropped, the app reloads it.
    assert.deepEqual(client.offsets, { hist: "e1:3-0" });

    const second = next(client, "rejoined");
    await client.send("next");
    const [r2] = await second;
    assert.deepEqual(r2.recovered, { hist: false, gone: false, plain: false });
    assert.deepEqual(client.offsets, {});
    assert.deepEqual(news.map((d) => d.n), [1, 2, 3, 4, 5]);
  } finally {
    client.close();
  }
});
