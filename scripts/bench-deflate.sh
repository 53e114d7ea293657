#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# permessage-deflate benchmark: T1/T3/T4/T5 of docs/benchmarks.md with
# compression beside the plain figures, and the fan-out compress-once check.
# Generator: `holdfast bench` (wsload does not offer deflate), pinned to core
# 1; servers pinned to core 0 with one worker, fresh per test, interleaved
# within each repeat:
#   plain      holdfast, compression off, generator without -z
#   deflate    holdfast --echo.compression=true, generator with -z (messages
#              compressed both ways, every echo inflated and checked)
#   ws-deflate Node `ws` with perMessageDeflate (level 1, no context
#              takeover on its side), generator with -z
# Then fan-out: 1000 subscribers on one channel, 200 publications/s of
# ~500 B, with and without -z; the RESULT reports the server's shared
# compressions per publication (must be 1.000).
#   scripts/bench-deflate.sh [-r REPEATS] [-d SECONDS]
# Prints every RESULT line and a median table; raw lines go to $OUT
# (default /tmp/hfbench-deflate). Do not record figures from a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEATS=3
DUR=5
while getopts "r:d:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) sed -n 2,19p "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/hfbench-deflate}
mkdir -p "$OUT"
RAW=$OUT/results.txt
: >"$RAW"
make -j2 build/holdfast >/dev/null
HF=$ROOT/build/holdfast
export NODE_MODULES=$ROOT/tests/interop/node_modules
PORT=19081
SRV=
ulimit -n "$(ulimit -Hn)"

stop_server() {
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
  SRV=
}
trap stop_server EXIT

# start PEER: a fresh server on $PORT, pinned to core 0; waits until it listens
start() {
  case $1 in
    plain) taskset -c 0 "$HF" serve --workers 1 --log.level warn --listen 127.0.0.1:$PORT 2>/dev/null & ;;
    deflate) taskset -c 0 "$HF" serve --workers 1 --log.level warn --listen 127.0.0.1:$PORT \
      --echo.compression=true 2>/dev/null & ;;
    ws-deflate) taskset -c 0 node scripts/bench-peers/ws_deflate_echo.mjs $PORT 900 2>/dev/null & ;;
  esac
  SRV=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-deflate: $1 did not start" >&2
  return 1
}

# run PEER TEST ARGS...: one generator run against a fresh server
run() {
  local peer=$1 test=$2
  shift 2
  local z=()
  [ "$peer" != plain ] && z=(-z)
  start "$peer" || return 0
  local line
  line=$(taskset -c 1 "$HF" bench -u ws://127.0.0.1:$PORT/echo -R "$SRV" "${z[@]}" "$@" 2>/dev/null |
    grep '^RESULT' | head -1 || true)
  [ -n "$line" ] || line="RESULT status=failed"
  echo "$peer $test $line" | tee -a "$RAW"
  stop_server
}

for rep in $(seq "$REPEATS"); do
  for peer in plain deflate ws-deflate; do
    run "$peer" T1 -c 100 -k 16 -s 32 -w 1 -d "$DUR"
    run "$peer" T1-1k -c 100 -k 16 -s 1024 -w 1 -d "$DUR"
    run "$peer" T3 -c 10 -k 1 -s 65536 -b -w 1 -d "$DUR"
    run "$peer" T4 -m storm -c 5000 -C 64
    run "$peer" T5 -m idle -c 10000 -H 5
  done
  for z in "" -z; do
    taskset -c 0 "$HF" serve --workers 1 --log.level warn --listen 127.0.0.1:$PORT \
      --websocket.compression=true --client.insecure=true --http_api.insecure=true 2>/dev/null &
    SRV=$!
    sleep 0.5
    line=$(taskset -c 1 "$HF" bench -m fanout -u ws://127.0.0.1:$PORT/connection/websocket \
      -A http://127.0.0.1:$PORT/api -R "$SRV" -c 1000 -r 200 -s 500 -w 1 -d "$DUR" $z 2>/dev/null |
      grep '^RESULT' | head -1 || true)
    [ -n "$line" ] || line="RESULT status=failed"
    echo "fanout${z:+-deflate} F $line" | tee -a "$RAW"
    stop_server
  done
done

python3 - "$RAW" <<'PY'
import statistics, sys
MAIN = {"T1": "msgs_per_s", "T1-1k": "msgs_per_s", "T3": "MBps", "T4": "handshakes_per_s",
        "T5": "rss_per_conn_bytes", "F": "deliveries_per_s"}
rows = {}
for ln in open(sys.argv[1]):
    parts = ln.split(" ", 2)
    if len(parts) < 3 or parts[1] not in MAIN:
        continue
    peer, test, rest = parts
    kv = dict(p.split("=", 1) for p in rest.split()[1:] if "=" in p)
    if kv.get("status") != "ok":
        continue
    for k in (MAIN[test], "compressions_per_pub", "server_cpu"):
        if k in kv:
            rows.setdefault((test, peer, k), []).append(float(kv[k].rstrip("%")))
base = {t: statistics.median(v) for (t, p, k), v in rows.items()
        if p in ("plain", "fanout") and k == MAIN[t]}
print("\ntest    peer            figure                 median   (n)   vs plain")
for (t, p, k), v in sorted(rows.items()):
    m = statistics.median(v)
    ratio = " %.2fx" % (m / base[t]) if k == MAIN[t] and base.get(t) else ""
    print("%-7s %-15s %-22s %10.2f  (%d)%s" % (t, p, k, m, len(v), ratio))
PY
