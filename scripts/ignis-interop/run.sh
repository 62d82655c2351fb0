#!/usr/bin/env bash
# Mixed-fleet interop check: the real Ignis WebSocketServerHelper (Bun) and this
# component on one private Redis. Usage: scripts/ignis-interop/run.sh [workdir]
# (default workdir /tmp/ignis-interop). Needs npm, go and redis-server; only binds 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-/tmp/ignis-interop}"
redis_port="${REDIS_PORT:-16399}"
ignis_port="${IGNIS_PORT:-18081}"
mkdir -p "$work"
cd "$work"
if [[ ! -x node_modules/@oven/bun-linux-x64/bin/bun ]]; then
	[[ -f package.json ]] || npm init -y >/dev/null
	# ioredis is pinned to the version ignis-helpers 0.0.7 pins. @hono/zod-openapi is required by ignis-helpers at runtime but not declared by it.
	npm install --no-audit --no-fund @oven/bun-linux-x64 @venizia/ignis-helpers@0.0.7 ioredis@5.9.3 @hono/zod-openapi zod >/dev/null
fi
cp "$here/ignis-server.ts" "$work/ignis-server.ts"
bun="$work/node_modules/@oven/bun-linux-x64/bin/bun"

# Another Redis on the port would answer the pings below (with NOAUTH, say)
# while ours fails to bind; refuse rather than run against it.
for p in "$redis_port" "$ignis_port"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "run.sh: 127.0.0.1:$p is already in use; set REDIS_PORT / IGNIS_PORT to free ports" >&2
		exit 2
	fi
done
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
bun_pid=""
cleanup() {
	[[ -n "$bun_pid" ]] && kill "$bun_pid" 2>/dev/null && wait "$bun_pid" 2>/dev/null || true
	if [[ -f "$work/redis.pid" ]]; then
		local rp
		rp="$(cat "$work/redis.pid")"
		kill "$rp" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$rp" 2>/dev/null || break; sleep 0.1; done
	fi
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

PORT="$ignis_port" REDIS_URL="redis://127.0.0.1:$redis_port" \
	AUTH_TIMEOUT_MS=1000 HEARTBEAT_INTERVAL_MS=1000 HEARTBEAT_TIMEOUT_MS=2500 \
	"$bun" "$work/ignis-server.ts" >"$work/ignis.log" 2>&1 &
bun_pid=$!
for _ in $(seq 100); do grep -q IGNIS_READY "$work/ignis.log" 2>/dev/null && break; sleep 0.1; done
grep -q IGNIS_READY "$work/ignis.log" || { cat "$work/ignis.log"; exit 1; }
echo "bun $("$bun" --version), @venizia/ignis-helpers $(node -p "require('$work/node_modules/@venizia/ignis-helpers/package.json').version"), redis $(redis-server --version | awk '{print $3}')"

rc=0
for routing in interest pattern; do
	(cd "$repo" && go run ./scripts/ignis-interop \
		-ignis "ws://127.0.0.1:$ignis_port/ws" -ignis-http "http://127.0.0.1:$ignis_port" \
		-redis "redis://127.0.0.1:$redis_port" -routing "$routing" \
		-auth-timeout 1s -hb-interval 1s -hb-timeout 2500ms -ignis-log "$work/ignis.log" "${@:2}") || rc=1
	echo
done
# Ignis' shutdown close code, seen by a client while Bun stops.
(cd "$repo" && go build -o "$work/ignis-interop-check" ./scripts/ignis-interop)
"$work/ignis-interop-check" -probe-shutdown -ignis "ws://127.0.0.1:$ignis_port/ws" >"$work/probe.out" 2>&1 &
probe_pid=$!
for _ in $(seq 100); do grep -q PROBE_READY "$work/probe.out" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$bun_pid"
wait "$probe_pid" || true
wait "$bun_pid" 2>/dev/null || true
bun_pid=""
grep -v PROBE_READY "$work/probe.out"
exit $rc
