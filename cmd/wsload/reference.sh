#!/usr/bin/env bash
# Runs the reference load tests of cmd/wsload/RESULTS.md on this machine and
# keeps every output and profile in one directory:
#
#   bash cmd/wsload/reference.sh [OUTDIR]
#
# It builds wsserver and wsload, starts a throw-away redis-server (no
# persistence) on 127.0.0.1:$REDIS_PORT, and runs, each against a fresh
# server pinned with taskset to $SERVER_CPU while wsload (and Redis) run on
# $LOAD_CPU (Redis on $REDIS_CPU, by default with wsload):
#   idle    $IDLE_CLIENTS clients held $IDLE_HOLD
#   fanout  1000 clients x 200 broadcasts of 100 bytes
#   echo    100 clients x 500 sequential round trips
#   fanout  over two instances on one Redis (both servers on $SERVER_CPU)
# each $REPEAT times, then two profiled runs: a CPU profile of a long
# fan-out and heap/goroutine profiles of $IDLE_CLIENTS idle connections.
# SERVER_FLAGS adds wsserver flags (e.g. -async-publish) to every server.
# Every target is on 127.0.0.1. Everything started here is stopped on exit.
#
# Side by side with the Ignis helper under Bun (the ratios of issue 10):
# WITH_BUN=1 bash cmd/wsload/reference.sh [OUTDIR] runs compare.sh instead,
# which runs every scenario against both servers alternately.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ -n "${WITH_BUN:-}" ]]; then
	exec bash cmd/wsload/compare.sh "$@"
fi
OUT=${1:-$(mktemp -d /tmp/wsload-ref.XXXXXX)}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
# Where Redis runs: a CPU list for taskset, or "none" to leave it unpinned.
REDIS_CPU=${REDIS_CPU:-$LOAD_CPU}
REDIS_PORT=${REDIS_PORT:-6399}
PORT1=${PORT1:-9000}
PORT2=${PORT2:-9001}
PPROF_PORT=${PPROF_PORT:-6060}
REPEAT=${REPEAT:-3}
IDLE_CLIENTS=${IDLE_CLIENTS:-5000}
IDLE_HOLD=${IDLE_HOLD:-10s}
PROFILE_BROADCASTS=${PROFILE_BROADCASTS:-3000}
PROFILE_SECONDS=${PROFILE_SECONDS:-20}

mkdir -p "$OUT/bin"
echo "reference.sh: output in $OUT" >&2
go build -o "$OUT/bin/wsserver" ./cmd/wsserver
go build -o "$OUT/bin/wsload" ./cmd/wsload

pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT

{
	echo "date: $(date -u +%FT%TZ)"
	echo "nproc: $(nproc)"
	lscpu | head -20
	free -h | head -2
	go version
	redis-server --version
	uname -r
	echo "ulimit -n: $(ulimit -n)"
	echo "pinning: servers on CPU $SERVER_CPU, wsload on CPU $LOAD_CPU, redis on CPU $REDIS_CPU"
	git log -1 --format='commit: %H %s' 2>/dev/null || true
	git status --short server/ 2>/dev/null | sed 's/^/dirty: /' || true
} >"$OUT/machine.txt"

redis_pin=(taskset -c "$REDIS_CPU")
if [[ "$REDIS_CPU" == none ]]; then
	redis_pin=()
fi
"${redis_pin[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--daemonize no --logfile "$OUT/redis.log" &
pids+=($!)
for _ in $(seq 100); do
	redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
	sleep 0.05
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

server_pid=()
# start_server PORT [extra flags...] starts a pinned wsserver and waits
# until its control routes answer.
start_server() {
	local port=$1
	shift
	taskset -c "$SERVER_CPU" "$OUT/bin/wsserver" -addr "127.0.0.1:$port" -redis "$REDIS_URL" ${SERVER_FLAGS:-} "$@" \
		2>>"$OUT/wsserver-$port.log" &
	local p=$!
	pids+=("$p")
	server_pid+=("$p")
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$port/stats" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "wsserver on $port did not start" >&2
	exit 1
}
stop_servers() {
	for p in "${server_pid[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	server_pid=()
}
load() {
	taskset -c "$LOAD_CPU" "$OUT/bin/wsload" "$@"
}

for i in $(seq "$REPEAT"); do
	start_server "$PORT1"
	load idle -url "ws://127.0.0.1:$PORT1/ws" -clients "$IDLE_CLIENTS" -hold "$IDLE_HOLD" \
		-pid "${server_pid[0]}" | tee "$OUT/idle-$i.txt"
	stop_servers

	start_server "$PORT1"
	load fanout -url "ws://127.0.0.1:$PORT1/ws" -clients 1000 -broadcasts 200 -size 100 \
		-pid "${server_pid[0]}" | tee "$OUT/fanout-$i.txt"
	stop_servers

	start_server "$PORT1"
	load echo -url "ws://127.0.0.1:$PORT1/ws" -clients 100 -rounds 500 -size 100 \
		-pid "${server_pid[0]}" | tee "$OUT/echo-$i.txt"
	stop_servers

	start_server "$PORT1"
	start_server "$PORT2"
	load fanout -nodes "ws://127.0.0.1:$PORT1/ws,ws://127.0.0.1:$PORT2/ws" -clients 1000 \
		-broadcasts 200 -size 100 -pid "${server_pid[0]},${server_pid[1]}" | tee "$OUT/twonode-$i.txt"
	stop_servers
done

# CPU profile of a long fan-out (profiling costs some CPU itself: these runs
# are not the measurement runs above).
start_server "$PORT1" -pprof "127.0.0.1:$PPROF_PORT"
curl -sf -o "$OUT/fanout-cpu.pprof" \
	"http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
curl_pid=$!
load fanout -url "ws://127.0.0.1:$PORT1/ws" -clients 1000 -broadcasts "$PROFILE_BROADCASTS" -size 100 \
	-pid "${server_pid[0]}" -quiet | tee "$OUT/fanout-profiled.txt"
wait "$curl_pid"
stop_servers
go tool pprof -top -nodecount=25 "$OUT/bin/wsserver" "$OUT/fanout-cpu.pprof" >"$OUT/fanout-cpu-top.txt" 2>&1
go tool pprof -top -cum -nodecount=40 "$OUT/bin/wsserver" "$OUT/fanout-cpu.pprof" >"$OUT/fanout-cpu-top-cum.txt" 2>&1

# Heap and goroutine profiles of idle connections.
start_server "$PORT1" -pprof "127.0.0.1:$PPROF_PORT"
load idle -url "ws://127.0.0.1:$PORT1/ws" -clients "$IDLE_CLIENTS" -hold 20s -pid "${server_pid[0]}" -quiet \
	>"$OUT/idle-profiled.txt" &
load_pid=$!
for _ in $(seq 600); do
	curl -sf "http://127.0.0.1:$PORT1/stats" | grep -q "\"Authenticated\":$IDLE_CLIENTS," && break
	sleep 0.1
done
sleep 3
base="http://127.0.0.1:$PPROF_PORT/debug/pprof"
curl -sf -o "$OUT/idle-heap.pprof" "$base/heap?gc=1"
curl -sf -o "$OUT/idle-heap.txt" "$base/heap?debug=1"
curl -sf -o "$OUT/idle-goroutine.txt" "$base/goroutine?debug=1"
grep VmRSS "/proc/${server_pid[0]}/status" >"$OUT/idle-vmrss.txt"
wait "$load_pid"
stop_servers
go tool pprof -top -sample_index=inuse_space -nodecount=25 "$OUT/bin/wsserver" "$OUT/idle-heap.pprof" \
	>"$OUT/idle-heap-top.txt" 2>&1
go tool pprof -top -cum -sample_index=inuse_space -nodecount=30 "$OUT/bin/wsserver" "$OUT/idle-heap.pprof" \
	>"$OUT/idle-heap-top-cum.txt" 2>&1
echo "reference.sh: done; results in $OUT" >&2
