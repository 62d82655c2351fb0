// Minimal Bun app running the REAL Ignis WebSocketServerHelper (@venizia/ignis-helpers)
// for the mixed-fleet interop check. Env:
//   PORT (default 18081), REDIS_URL (default redis://127.0.0.1:6379),
//   AUTH_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS (Ignis defaults if unset).
// WebSocket on ws://127.0.0.1:PORT/ws; control endpoints (JSON bodies):
//   POST /send  {destination?, topic, data}            -> helper.send(...)
//   POST /emit  {kind: room|user|client|broadcast, target?, event, data, exclude?} -> WebSocketEmitter
//   GET  /clients                                      -> [{id,userId,state,rooms}]
//   GET  /info                                         -> {serverId}
import Redis from 'ioredis';
import {
  DefaultRedisHelper,
  WebSocketEmitter,
  WebSocketServerHelper,
} from '@venizia/ignis-helpers';

const port = Number(process.env.PORT ?? 18081);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const num = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined);

const redis = new DefaultRedisHelper({
  scope: 'interop',
  identifier: 'interop-redis',
  client: new Redis(redisUrl),
});

let bunServer: any = null;
// The helper wants the Bun server at construction time; Bun.serve wants the
// helper's handlers. A thin forwarder breaks the cycle.
const serverRef = {
  get pendingWebSockets() {
    return bunServer?.pendingWebSockets ?? 0;
  },
  publish(topic: string, data: any, compress?: boolean) {
    return bunServer.publish(topic, data, compress);
  },
};

const helper = new WebSocketServerHelper({
  identifier: 'IGNIS_INTEROP',
  path: '/ws',
  server: serverRef as any,
  redisConnection: redis,
  authTimeout: num('AUTH_TIMEOUT_MS'),
  heartbeatInterval: num('HEARTBEAT_INTERVAL_MS'),
  heartbeatTimeout: num('HEARTBEAT_TIMEOUT_MS'),
  authenticateFn: async (data: any) => {
    const t = data?.token;
    if (typeof t === 'string' && t.startsWith('user:') && t.length > 5) {
      return { userId: t.slice(5) };
    }
    return null;
  },
  validateRoomFn: ({ rooms }) => rooms,
});

const emitter = new WebSocketEmitter({ identifier: 'IGNIS_INTEROP_EMITTER', redisConnection: redis });

await helper.configure();
await emitter.configure();

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

bunServer = Bun.serve({
  hostname: '127.0.0.1',
  port,
  async fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === helper.getPath()) {
      const ok = server.upgrade(req, { data: { clientId: crypto.randomUUID() } });
      return ok ? undefined : new Response('upgrade failed', { status: 400 });
    }
    if (url.pathname === '/send' && req.method === 'POST') {
      const b: any = await req.json();
      helper.send({ destination: b.destination || undefined, payload: { topic: b.topic, data: b.data } });
      return json({ ok: true });
    }
    if (url.pathname === '/emit' && req.method === 'POST') {
      const b: any = await req.json();
      switch (b.kind) {
        case 'room': await emitter.toRoom({ room: b.target, event: b.event, data: b.data, exclude: b.exclude }); break;
        case 'user': await emitter.toUser({ userId: b.target, event: b.event, data: b.data }); break;
        case 'client': await emitter.toClient({ clientId: b.target, event: b.event, data: b.data }); break;
        case 'broadcast': await emitter.broadcast({ event: b.event, data: b.data }); break;
        default: return json({ error: 'kind' }, 400);
      }
      return json({ ok: true });
    }
    if (url.pathname === '/clients') {
      const m = helper.getClients() as Map<string, any>;
      return json([...m.values()].map(c => ({ id: c.id, userId: c.userId, state: c.state, rooms: [...c.rooms] })));
    }
    if (url.pathname === '/info') {
      return json({ serverId: (helper as any).serverId });
    }
    return new Response('not found', { status: 404 });
  },
  websocket: helper.getBunWebSocketHandler() as any,
});

console.log(`IGNIS_READY ws://127.0.0.1:${port}/ws`);

const stop = async () => {
  await helper.shutdown();
  await emitter.shutdown();
  bunServer.stop(true);
  await redis.getClient().quit();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
