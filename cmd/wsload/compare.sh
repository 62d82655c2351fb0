#!/usr/bin/env bash
# Side by side: cmd/wsserver against the Ignis WebSocketServerHelper under Bun
# (scripts/ignis-interop/bench-server.ts, the same load-test contract), in one
# run, alternately (Go, Bun, Go, Bun, … for every case of every round), each
# server pinned to $SERVER_CPU, wsload and Redis on $LOAD_CPU; then the
# medians, the Go/Bun ratios and the goals of issue 10 (wsload compare).
#
#   bash cmd/wsload/compare.sh [OUTDIR]            # full: ROUNDS=5, ~15 min (estimate)
#   SMOKE=1 bash cmd/wsload/compare.sh [OUTDIR]    # 2 rounds, small counts, ~2 min
#
# Cases (CASES, space-separated; default all):
#   idle           $IDLE_CLIENTS clients held $IDLE_HOLD: RSS per connection, connect+auth rate
#   idle-large     $IDLE_LARGE_CLIENTS clients held $IDLE_HOLD (lowered to what `ulimit -n` allows)
#   fanout-closed  $FANOUT_CLIENTS clients × $BROADCASTS broadcasts of $SIZE bytes, back to back
#   fanout-paced   $FANOUT_CLIENTS clients × $PACED_BROADCASTS broadcasts, one per $PACED_INTERVAL (20ms: 50/s)
#   echo           $ECHO_CLIENTS clients × $ECHO_ROUNDS sequential round trips
#   two-instances  $FANOUT_CLIENTS clients over two servers of a kind on one Redis,
#                  $BROADCASTS broadcasts triggered on the first; CPU summed over both
# Every run starts fresh servers. Results: OUTDIR/CASE.SERVER.ROUND.{json,txt},
# OUTDIR/machine.txt, OUTDIR/summary.md (printed at the end).
#
# Bun 1.x and @venizia/ignis-helpers 0.0.7 are installed from npm into
# $BUN_WORK (default /tmp/wsload-bun) on the first run, as
# scripts/ignis-interop/run.sh does. Every process binds 127.0.0.1 only; the
# ports are checked free before starting; everything started here is stopped
# on exit (trap), by PID.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd)
OUT=${1:-$(mktemp -d /tmp/wsload-compare.XXXXXX)}
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)

SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REDIS_CPU=${REDIS_CPU:-$LOAD_CPU}
REDIS_PORT=${REDIS_PORT:-26399}
GO_PORT1=${GO_PORT1:-29000}
GO_PORT2=${GO_PORT2:-29001}
BUN_PORT1=${BUN_PORT1:-29100}
BUN_PORT2=${BUN_PORT2:-29101}
BUN_WORK=${BUN_WORK:-/tmp/wsload-bun}
CASES=${CASES:-idle idle-large fanout-closed fanout-paced echo two-instances}
SERVERS=${SERVERS:-go bun}
if [[ -n "${SMOKE:-}" ]]; then
	ROUNDS=${ROUNDS:-2}
	IDLE_CLIENTS=${IDLE_CLIENTS:-2000}
	IDLE_LARGE_CLIENTS=${IDLE_LARGE_CLIENTS:-15000}
	IDLE_HOLD=${IDLE_HOLD:-3s}
	BROADCASTS=${BROADCASTS:-50}
	PACED_BROADCASTS=${PACED_BROADCASTS:-50}
	ECHO_ROUNDS=${ECHO_ROUNDS:-100}
fi
ROUNDS=${ROUNDS:-5}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
IDLE_LARGE_CLIENTS=${IDLE_LARGE_CLIENTS:-15000}
IDLE_HOLD=${IDLE_HOLD:-10s}
FANOUT_CLIENTS=${FANOUT_CLIENTS:-1000}
BROADCASTS=${BROADCASTS:-200}
PACED_BROADCASTS=${PACED_BROADCASTS:-400}
PACED_INTERVAL=${PACED_INTERVAL:-20ms}
SIZE=${SIZE:-100}
ECHO_CLIENTS=${ECHO_CLIENTS:-100}
ECHO_ROUNDS=${ECHO_ROUNDS:-500}
# wsserver flags for every Go server (e.g. -async-publish).
GO_FLAGS=${GO_FLAGS:-}

log() { echo "compare.sh: $*" >&2; }

# Descriptors: each side holds one per client (wsload in one process, the
# server in another) plus a few dozen of its own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
fd_note=""
if [[ "$nofile" != unlimited ]] && ((IDLE_LARGE_CLIENTS + 200 > nofile)); then
	fd_note="idle-large lowered from $IDLE_LARGE_CLIENTS to $((nofile - 200)) clients: ulimit -n is $nofile (hard limit)"
	IDLE_LARGE_CLIENTS=$((nofile - 200))
	log "$fd_note"
fi

for p in "$REDIS_PORT" "$GO_PORT1" "$GO_PORT2" "$BUN_PORT1" "$BUN_PORT2"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		log "127.0.0.1:$p is already in use; set REDIS_PORT, GO_PORT1/2, BUN_PORT1/2 to free ports"
		exit 2
	fi
done

log "output in $OUT"
go build -o "$OUT/bin/wsserver" ./cmd/wsserver
go build -o "$OUT/bin/wsload" ./cmd/wsload

mkdir -p "$BUN_WORK"
if [[ ! -x "$BUN_WORK/node_modules/@oven/bun-linux-x64/bin/bun" || ! -d "$BUN_WORK/node_modules/@venizia/ignis-helpers" ]]; then
	log "installing Bun and @venizia/ignis-helpers 0.0.7 into $BUN_WORK (npm)"
	(
		cd "$BUN_WORK"
		[[ -f package.json ]] || npm init -y >/dev/null
		# As scripts/ignis-interop/run.sh: ioredis pinned to ignis-helpers'
		# version; @hono/zod-openapi is needed at runtime but not declared.
		npm install --no-audit --no-fund @oven/bun-linux-x64@1 @venizia/ignis-helpers@0.0.7 ioredis@5.9.3 \
			@hono/zod-openapi zod >npm.log 2>&1
	)
fi
cp scripts/ignis-interop/bench-server.ts "$BUN_WORK/bench-server.ts"
BUN="$BUN_WORK/node_modules/@oven/bun-linux-x64/bin/bun"
mkdir -p "$OUT/ignis-logs"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
	echo "date: $(date -u +%FT%TZ)"
	echo "nproc: $(nproc)"
	lscpu | head -20
	free -h | head -2
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	go version
	redis-server --version
	echo "bun $("$BUN" --version), @venizia/ignis-helpers $(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$BUN_WORK/node_modules/@venizia/ignis-helpers/package.json")"
	uname -r
	echo "ulimit -n: $nofile${fd_note:+ ($fd_note)}"
	echo "pinning: servers on CPU $SERVER_CPU, wsload on CPU $LOAD_CPU, redis on CPU $REDIS_CPU"
	echo "rounds: $ROUNDS; cases: $CASES"
	echo "counts: idle $IDLE_CLIENTS, idle-large $IDLE_LARGE_CLIENTS, hold $IDLE_HOLD; fan-out $FANOUT_CLIENTS clients × $BROADCASTS (paced $PACED_BROADCASTS every $PACED_INTERVAL), $SIZE bytes; echo $ECHO_CLIENTS × $ECHO_ROUNDS"
	git log -1 --format='commit: %H %s' 2>/dev/null || true
	git status --short server/ internal/ cmd/wsserver/ 2>/dev/null | sed 's/^/dirty: /' || true
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

taskset -c "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--daemonize no --logfile "$OUT/redis.log" &
pids+=($!)
for _ in $(seq 100); do
	redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
	sleep 0.05
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

server_pid=()
# start_server go|bun PORT starts one pinned server and waits until its
# GET /stats answers.
start_server() {
	local kind=$1 port=$2
	case $kind in
	go)
		# shellcheck disable=SC2086
		taskset -c "$SERVER_CPU" "$OUT/bin/wsserver" -addr "127.0.0.1:$port" -redis "$REDIS_URL/0" $GO_FLAGS \
			2>>"$OUT/wsserver-$port.log" &
		;;
	bun)
		(cd "$BUN_WORK" && PORT=$port HOST=127.0.0.1 REDIS_URL="$REDIS_URL" LOG_LEVEL=warn \
			APP_ENV_LOGGER_FOLDER_PATH="$OUT/ignis-logs" exec taskset -c "$SERVER_CPU" "$BUN" bench-server.ts) \
			>>"$OUT/bun-$port.log" 2>&1 &
		;;
	esac
	local p=$!
	pids+=("$p")
	server_pid+=("$p")
	for _ in $(seq 300); do
		curl -sf --noproxy '*' "http://127.0.0.1:$port/stats" >/dev/null 2>&1 && return 0
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	log "$kind server on $port did not start; see $OUT/*-$port.log"
	exit 1
}
stop_servers() {
	local p
	for p in "${server_pid[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${server_pid[@]}"; do
		for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	server_pid=()
}
join() { local IFS=,; echo "$*"; }

# one CASE SERVER ROUND runs one case against fresh servers of one kind.
one() {
	local c=$1 kind=$2 round=$3
	local p1=$GO_PORT1 p2=$GO_PORT2
	if [[ $kind == bun ]]; then p1=$BUN_PORT1 p2=$BUN_PORT2; fi
	local args=()
	start_server "$kind" "$p1"
	case $c in
	idle) args=(idle -url "ws://127.0.0.1:$p1/ws" -clients "$IDLE_CLIENTS" -hold "$IDLE_HOLD") ;;
	idle-large) args=(idle -url "ws://127.0.0.1:$p1/ws" -clients "$IDLE_LARGE_CLIENTS" -hold "$IDLE_HOLD" -timeout 5m) ;;
	fanout-closed) args=(fanout -url "ws://127.0.0.1:$p1/ws" -clients "$FANOUT_CLIENTS" -broadcasts "$BROADCASTS" -size "$SIZE") ;;
	fanout-paced) args=(fanout -url "ws://127.0.0.1:$p1/ws" -clients "$FANOUT_CLIENTS" -broadcasts "$PACED_BROADCASTS"
		-size "$SIZE" -interval "$PACED_INTERVAL") ;;
	echo) args=(echo -url "ws://127.0.0.1:$p1/ws" -clients "$ECHO_CLIENTS" -rounds "$ECHO_ROUNDS" -size "$SIZE") ;;
	two-instances)
		start_server "$kind" "$p2"
		args=(fanout -nodes "ws://127.0.0.1:$p1/ws,ws://127.0.0.1:$p2/ws" -clients "$FANOUT_CLIENTS"
			-broadcasts "$BROADCASTS" -size "$SIZE")
		;;
	*)
		log "unknown case $c"
		exit 2
		;;
	esac
	local base="$OUT/$c.$kind.$round"
	log "round $round/$ROUNDS: $c on $kind (load $(cut -d' ' -f1 /proc/loadavg))"
	taskset -c "$LOAD_CPU" "$OUT/bin/wsload" "${args[@]}" -pid "$(join "${server_pid[@]}")" -quiet \
		-json "$base.json" >"$base.txt" 2>&1 || log "$c on $kind round $round: wsload failed (kept in $base.txt)"
	stop_servers
}

start=$(date +%s)
for round in $(seq "$ROUNDS"); do
	for c in $CASES; do
		for kind in $SERVERS; do
			one "$c" "$kind" "$round"
		done
	done
done
log "runs done in $(($(date +%s) - start)) s"

{
	echo "## Go (cmd/wsserver) vs Bun (Ignis WebSocketServerHelper), $ROUNDS rounds"
	echo
	sed 's/^/    /' "$OUT/machine.txt"
	echo
	"$OUT/bin/wsload" compare "$OUT"
} | tee "$OUT/summary.md"
