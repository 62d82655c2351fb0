// Load-test contract server on the REAL Ignis WebSocketServerHelper
// (@venizia/ignis-helpers) under Bun: the counterpart of cmd/wsserver
// (internal/benchserver) for cmd/wsload's side-by-side runs
// (cmd/wsload/compare.sh). It speaks the same contract:
//
//   - authenticate {"token":"<non-empty string>"}: the token is the user id;
//   - "echo" {event:"echo",data:D} is answered to the sender with the same
//     event and data (helper.sendToClient);
//   - "fanout" {n,size,run?,room?,interval?,local?} as a frame, or
//     POST /broadcast?n=&size=&run=&room=&interval=&local=1, sends n frames
//     {"event":"bench","data":{"run":R,"seq":i,"t":<unix ns>,"pad":"xx…"}}
//     through helper.send (local fan-out by Bun's native publish + one Redis
//     PUBLISH; with a room, destination = room), or with local=1 through
//     helper.broadcast / helper.sendToRoom (no Redis), and answers
//     {"sent":n,"firstT":…,"lastT":…,"publishErrors":0};
//   - GET /stats answers {"clients":…,"Authenticated":…}.
//
// Env: PORT (default 19100), HOST (127.0.0.1; only loopback is accepted),
// REDIS_URL (redis://127.0.0.1:6379), LOG_LEVEL (warn: the same level as
// wsserver's default; Ignis logs every connect and disconnect at info).
//
// Fan-out pacing: with interval 0 the next message is sent after the event
// loop has turned once (setImmediate), so that each broadcast is written
// before the next is produced, as in Go, where PublishBroadcast returns after
// Redis acknowledged the publish; with an interval, messages are due at
// start + i × interval (Go: a time.Ticker).
import Redis from 'ioredis';
import {
  DefaultRedisHelper,
  WebSocketServerHelper,
  applicationLogger,
} from '@venizia/ignis-helpers';

const port = Number(process.env.PORT ?? 19100);
const host = process.env.HOST ?? '127.0.0.1';
if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
  console.error(`bench-server: HOST ${host} is not loopback; refusing`);
  process.exit(2);
}
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
// winston filters per transport and a transport's own level wins over the
// logger's (Ignis gives its console transport "debug", its file "info"), so
// each transport is turned down too. Messages below the level are still
// formatted by winston before being dropped: that cost is Ignis' own.
{
  const logger = applicationLogger as any;
  const level = process.env.LOG_LEVEL ?? 'warn';
  logger.level = level;
  for (const t of logger.transports) {
    if (t.level === undefined || logger.levels[t.level] > logger.levels[level]) t.level = level;
  }
}

const MAX_MESSAGES = 1_000_000;
const MAX_SIZE = 64 * 1024;
const MAX_INTERVAL_MS = 10_000;

// Wall clock in Unix nanoseconds with sub-millisecond precision: Date.now()
// has milliseconds only, so the offset between it and the monotonic clock is
// taken at the instant Date.now() ticks over. wsload compares these stamps
// with Go's time.Now() on the same machine.
const wallOffsetNs = (() => {
  const t0 = Date.now();
  let t = t0;
  let mono = process.hrtime.bigint();
  while (t === t0) {
    t = Date.now();
    mono = process.hrtime.bigint();
  }
  return BigInt(t) * 1_000_000n - mono;
})();
const nowNs = (): number => Number(process.hrtime.bigint() + wallOffsetNs);

const redis = new DefaultRedisHelper({
  scope: 'bench',
  identifier: 'bench-redis',
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

type FanoutRequest = {
  n: number;
  size?: number;
  run?: string;
  room?: string;
  intervalMs?: number;
  local?: boolean;
};

// payload builds the bench data of message seq, padded so that its JSON is
// size bytes long, as benchserver.Payload does.
function payload(run: string, seq: number, t: number, size: number) {
  const bare = JSON.stringify({ run, seq, t, pad: '' }).length;
  return { run, seq, t, pad: 'x'.repeat(Math.max(0, size - bare)) };
}

const nextTurn = () => new Promise<void>(resolve => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

async function fanout(req: FanoutRequest) {
  const n = req.n;
  const size = req.size || 100;
  const interval = req.intervalMs ?? 0;
  if (!Number.isInteger(n) || n < 1 || n > MAX_MESSAGES || !Number.isInteger(size) || size < 0 ||
      size > MAX_SIZE || !(interval >= 0) || interval > MAX_INTERVAL_MS) {
    throw new RangeError(`bad fan-out request: want 1 ≤ n ≤ ${MAX_MESSAGES}, 0 ≤ size ≤ ${MAX_SIZE}, 0 ≤ interval ≤ ${MAX_INTERVAL_MS} ms`);
  }
  const run = req.run ?? '';
  const res = { sent: 0, firstT: 0, lastT: 0, publishErrors: 0 };
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    if (i > 0) {
      if (interval > 0) {
        const wait = start + i * interval - performance.now();
        if (wait > 0) await sleep(wait);
      } else {
        await nextTurn();
      }
    }
    const t = nowNs();
    const data = payload(run, i, t, size);
    if (req.local && req.room) {
      helper.sendToRoom({ room: req.room, event: 'bench', data });
    } else if (req.local) {
      helper.broadcast({ event: 'bench', data });
    } else {
      helper.send({ destination: req.room || undefined, payload: { topic: 'bench', data } });
    }
    if (i === 0) res.firstT = t;
    res.lastT = t;
    res.sent++;
  }
  return res;
}

// parseDurationMs reads Go duration strings as wsload sends them ("20ms",
// "1.5s", "500µs") and numbers of nanoseconds.
function parseDurationMs(v: unknown): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number') return v / 1e6;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };
  let total = 0;
  let rest = String(v);
  if (rest === '0') return 0;
  while (rest.length > 0) {
    const m = /^([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    if (!m) throw new RangeError(`bad duration ${v}`);
    total += Number(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

const helper = new WebSocketServerHelper({
  identifier: 'IGNIS_BENCH',
  path: '/ws',
  server: serverRef as any,
  redisConnection: redis,
  authenticateFn: async (data: any) => {
    const t = data?.token;
    return typeof t === 'string' && t.length > 0 ? { userId: t } : null;
  },
  validateRoomFn: ({ rooms }) => rooms,
  messageHandler: async ({ clientId, message }: any) => {
    switch (message.event) {
      case 'echo':
        helper.sendToClient({ clientId, event: 'echo', data: message.data ?? null });
        return;
      case 'fanout': {
        const d = message.data ?? {};
        await fanout({ n: d.n, size: d.size, run: d.run, room: d.room, intervalMs: parseDurationMs(d.interval), local: !!d.local });
        return;
      }
    }
  },
});

await helper.configure();

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v) + '\n', { status, headers: { 'content-type': 'application/json' } });

bunServer = Bun.serve({
  hostname: host,
  port,
  async fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === helper.getPath()) {
      const ok = server.upgrade(req, { data: { clientId: crypto.randomUUID() } });
      return ok ? undefined : new Response('upgrade failed', { status: 400 });
    }
    if (url.pathname === '/broadcast' && req.method === 'POST') {
      const q = url.searchParams;
      try {
        const res = await fanout({
          n: q.has('n') ? Number(q.get('n')) : 1,
          size: q.has('size') ? Number(q.get('size')) : 100,
          run: q.get('run') ?? '',
          room: q.get('room') ?? '',
          intervalMs: parseDurationMs(q.get('interval')),
          local: q.get('local') === '1',
        });
        return json(res);
      } catch (e) {
        return new Response(`bench-server: ${e}\n`, { status: 400 });
      }
    }
    if (url.pathname === '/stats' && req.method === 'GET') {
      const clients = helper.getClients() as Map<string, any>;
      let authenticated = 0;
      for (const c of clients.values()) if (c.state === 'authenticated') authenticated++;
      return json({ clients: clients.size, Authenticated: authenticated });
    }
    return new Response('not found', { status: 404 });
  },
  websocket: helper.getBunWebSocketHandler() as any,
});

console.log(`BENCH_READY pid ${process.pid} ws://${host}:${port}/ws bun ${Bun.version}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await helper.shutdown();
  bunServer.stop(true);
  await redis.getClient().quit();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
