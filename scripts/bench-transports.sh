#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Transport benchmark (docs/benchmarks.md, "Transports"): the same fan-out
# over WebSocket, HTTP streaming and SSE in one run. Every holdfast server is
# fresh, pinned to core 0 with one worker; the load generator (holdfast
# bench --transport T) runs on core 1; transports interleaved inside each
# repeat; everything on 127.0.0.1.
#   D   SUBS subscribers of one channel (http_stream/SSE: subscribed by the
#       token's channels claim), RATE publications/s through /api/batch
#       (up to 64 per request), 2 s warm-up, 5 s window: deliveries/s,
#       publish-to-delivery latency, server CPU
#   M   SUBS idle subscribers, fresh process: server RSS per session
#   scripts/bench-transports.sh [-r REPEATS] [-c SUBS] [-R RATE] [phases...]
#                                                 (default: 3, 10000, 200, D M)
# Raw RESULT lines go to $OUT (default /tmp/hf-transports-bench.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
REPEATS=3
SUBS=10000
RATE=200
while getopts "r:c:R:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    c) SUBS=$OPTARG ;;
    R) RATE=$OPTARG ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(D M)
OUT=${OUT:-/tmp/hf-transports-bench.txt}
HF=$PWD/build/holdfast
make -j2 build/holdfast >/dev/null || exit 1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_hf: sets PORT PID (fresh server on core 0)
start_hf() {
  PORT=$(free_port)
  taskset -c 0 "$HF" serve --workers 1 --log.level warn --http_api.key=bench \
    --client.token.hmac_secret_key=bench-secret \
    --channel.without_namespace='{"allow_subscribe_for_client":true}' \
    --http_stream.enabled=true --sse.enabled=true --client.ping_interval=0 \
    --client.queue_max_size=1048576 --listen 127.0.0.1:"$PORT" 2>/dev/null &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && return 0
    sleep 0.05
  done
  echo "server did not start" >&2
  return 1
}
stop_hf() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }

url_of() { # TRANSPORT
  if [ "$1" = websocket ]; then echo "ws://127.0.0.1:$PORT/connection/websocket"
  else echo "http://127.0.0.1:$PORT/connection/$1"; fi
}

run() { # PHASE TRANSPORT REPEAT ARGS...
  local phase=$1 t=$2 rep=$3
  shift 3
  start_hf || return 1
  local line
  line=$(taskset -c 1 "$HF" bench -m fanout --transport "$t" -u "$(url_of "$t")" \
    -A "http://127.0.0.1:$PORT/api" -K bench -t bench-secret -R "$PID" -c "$SUBS" "$@" |
    grep '^RESULT')
  echo "PHASE=$phase repeat=$rep $line" | tee -a "$OUT"
  stop_hf
}

echo "# bench-transports $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) subs=$SUBS rate=$RATE" | tee -a "$OUT"
for ((r = 1; r <= REPEATS; r++)); do
  for ph in "${PHASES[@]}"; do
    for t in websocket http_stream sse; do
      case $ph in
        D) run D "$t" "$r" -r "$RATE" -b 64 -w 2 -d 5 ;;
        M) run M "$t" "$r" -d 0 -H 3 ;;
        *) echo "unknown phase $ph" >&2; exit 2 ;;
      esac
    done
  done
done
