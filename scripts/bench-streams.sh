#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Streams and engine benchmarks (docs/benchmarks.md, "Streams and the Redis
# engine"): every holdfast server pinned to core 0 with one worker, the load
# generator (holdfast bench) on core 1, a fresh server per run, variants
# interleaved inside each repeat, everything on 127.0.0.1.
#   H   fan-out to 10,000 subscribers of one channel, 200 publications/s in
#       /api/batch requests of up to 64: history off vs on
#   B   10,000 channels x 1 subscriber, /api/batch of up to 1000 as fast as
#       it goes: history off vs on
#   R   10,000 subscribers cut at once while 100 publications go out, then
#       all reconnect: recovery vs refetch through /api/history
#   E   1,000 channels x 1 subscriber, /api/batch of 1000, 64-byte data:
#       memory engine vs the Redis engine (Redis on core 1), and
#       redis-benchmark PUBLISH -P 1000 with 64 bytes to a channel with one
#       subscriber; plus one channel with 10,000 subscribers on node A
#       (core 0), 200 publications/s in batches of up to 64 through node B's
#       API (core 1, with Redis and the generator): the Redis hop, vs one
#       memory-engine node doing both
#   scripts/bench-streams.sh [-r REPEATS] [phases...]     (default: 3, H B R E)
# Raw RESULT lines go to $OUT (default /tmp/hf-streams-bench.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
REPEATS=3
while getopts "r:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    *) sed -n 2,20p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(H B R E)
OUT=${OUT:-/tmp/hf-streams-bench.txt}
HF=$PWD/build/holdfast
REDIS=/usr/bin/redis-server
make -j2 build/holdfast >/dev/null || exit 1
SECRET=bench-secret
NS='[{"name":"hist","history_size":100,"history_ttl":"300s","allow_subscribe_for_client":true,"allow_recovery":true,"allow_history_for_subscriber":true},
     {"name":"bench","history_size":1000,"history_ttl":"300s","allow_subscribe_for_client":true,"allow_recovery":true,"allow_history_for_subscriber":true}]'
TMP=$(mktemp -d /tmp/hf-sbench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_hf NAME CORE [FLAGS...]: sets PORT_<NAME> PID_<NAME>
start_hf() {
  local name=$1 core=$2 port
  shift 2
  port=$(free_port)
  taskset -c "$core" "$HF" serve --workers 1 --log.level warn --http_api.key=bench \
    --client.token.hmac_secret_key=$SECRET \
    --channel.without_namespace='{"allow_subscribe_for_client":true}' \
    --channel.namespaces="$NS" --client.recovery_max_publication_limit=0 \
    --listen 127.0.0.1:"$port" "$@" 2>"$TMP/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  printf -v "PORT_$name" %s "$port"
  printf -v "PID_$name" %s "$pid"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

start_redis() { # sets REDIS_PORT REDIS_PID
  REDIS_PORT=$(free_port)
  taskset -c 1 "$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --loglevel warning >"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# bench TAG PORT [ARGS...]: one holdfast bench run on core 1, RESULT line tagged
bench() {
  local tag=$1 port=$2
  shift 2
  local line
  line=$(taskset -c 1 "$HF" bench -u "ws://127.0.0.1:$port/connection/websocket" \
    -A "http://127.0.0.1:$port/api" -K bench -t $SECRET "$@" 2>&1 | grep -E "^RESULT|^bench:" | tail -1)
  echo "$tag rep=$REP $line" | tee -a "$OUT"
}

phase_H() {
  for v in off on; do
    local ch=bench.h
    [ $v = on ] && ch=hist:h
    start_hf H 0
    bench "H-$v" "$PORT_H" -m fanout -c 10000 --channel "$ch" -r 200 -b 64 -w 2 -d 5 -R "$PID_H"
    stop_pid "$PID_H"
  done
}

phase_B() {
  for v in off on; do
    local ch=b
    [ $v = on ] && ch=hist:b
    start_hf B 0
    bench "B-$v" "$PORT_B" -m fanout -M channels -c 10000 --channel "$ch" -r 100000 -b 1000 \
      -w 2 -d 5 -R "$PID_B"
    stop_pid "$PID_B"
  done
}

phase_R() {
  for v in recover refetch; do
    start_hf R 0
    local extra=()
    [ $v = refetch ] && extra=(--refetch)
    bench "R-$v" "$PORT_R" -m recover -c 10000 -p 100 --channel bench:storm -R "$PID_R" "${extra[@]}"
    stop_pid "$PID_R"
  done
}

phase_E() {
  # E1: publications/s into 1,000 channels, memory vs Redis engine
  start_hf E 0
  bench "E1-memory" "$PORT_E" -m fanout -M channels -c 1000 --channel e -r 200000 -b 1000 -s 64 \
    -w 2 -d 5 -R "$PID_E"
  stop_pid "$PID_E"
  start_redis
  start_hf E 0 --engine.type=redis --engine.redis.address=127.0.0.1:"$REDIS_PORT"
  sleep 0.5
  local r0 r1
  r0=$(cpu_ticks "$REDIS_PID")
  bench "E1-redis" "$PORT_E" -m fanout -M channels -c 1000 --channel e -r 200000 -b 1000 -s 64 \
    -w 2 -d 5 -R "$PID_E"
  r1=$(cpu_ticks "$REDIS_PID")
  echo "E1-redis rep=$REP redis_cpu_ticks=$((r1 - r0)) (over setup + 2 s warm-up + 5 s + drain; 100 ticks = 1 CPU-s)" | tee -a "$OUT"
  stop_pid "$PID_E"
  # the same PUBLISH load from redis-benchmark: 64-byte payload, pipeline
  # 1000, one subscriber on the channel (as holdfast's worker is)
  redis-cli -p "$REDIS_PORT" subscribe e.sub >/dev/null &
  local sub=$!
  PIDS+=("$sub")
  sleep 0.3
  r0=$(cpu_ticks "$REDIS_PID")
  local rb
  rb=$(taskset -c 0 redis-benchmark -p "$REDIS_PORT" -n 2000000 -P 1000 -c 1 -q \
    PUBLISH e.sub "$(head -c 64 /dev/zero | tr '\0' x)" 2>&1 | tr '\r' '\n' | grep -i 'requests per second' | tail -1)
  r1=$(cpu_ticks "$REDIS_PID")
  echo "E1-redis-benchmark rep=$REP $rb redis_cpu_ticks=$((r1 - r0))" | tee -a "$OUT"
  kill "$sub" 2>/dev/null
  # E2: one channel, 10,000 subscribers on node A (core 0), publisher's API
  # on node B (core 1): the Redis hop, vs both on one memory-engine node
  start_hf A 0 --engine.type=redis --engine.redis.address=127.0.0.1:"$REDIS_PORT"
  start_hf B2 1 --engine.type=redis --engine.redis.address=127.0.0.1:"$REDIS_PORT"
  sleep 0.5
  local line
  line=$(taskset -c 1 "$HF" bench -m fanout -u "ws://127.0.0.1:$PORT_A/connection/websocket" \
    -A "http://127.0.0.1:$PORT_B2/api" -K bench -t $SECRET -c 10000 --channel e2 -r 200 -b 64 \
    -w 2 -d 5 -R "$PID_A" 2>&1 | grep '^RESULT' | tail -1)
  echo "E2-redis-2nodes rep=$REP $line" | tee -a "$OUT"
  stop_pid "$PID_A"
  stop_pid "$PID_B2"
  stop_pid "$REDIS_PID"
  start_hf E 0
  bench "E2-memory" "$PORT_E" -m fanout -c 10000 --channel e2 -r 200 -b 64 -w 2 -d 5 -R "$PID_E"
  stop_pid "$PID_E"
}

echo "# bench-streams $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
for ((REP = 1; REP <= REPEATS; REP++)); do
  for ph in "${PHASES[@]}"; do
    "phase_$ph"
  done
done
echo "# done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
