#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The send path (issue 14: io_uring, MSG_ZEROCOPY), for a QUIET machine: prints
# figures and keeps the raw lines in $OUT (default /tmp/hf-bench-sendpath).
#   scripts/bench-sendpath.sh [-r REPEATS] [-d SECONDS] [parts...]
# parts (default all):
#   tool    holdfast bench -m sendpath (no server): the sender's CPU per send
#           over 10,000 loopback connections, sendmsg vs io_uring (plain and
#           registered files), 100 B frames, k = 1, 8 and 64 per connection
#           per sweep, 30 alternating repeats each; then 100 connections with
#           16, 64 and 256 KiB messages: sendmsg vs MSG_ZEROCOPY vs io_uring
#           SEND and SEND_ZC
#   server  holdfast serve with http_server.io_uring_send=false and =true,
#           alternating, REPEATS times each: A1 (10,000 subscribers, one
#           channel, 100 publications/s, one per API request: one frame per
#           subscriber per sweep) and A2 (300/s in /api/batch requests of
#           64); prints deliveries per server CPU-second per run
# server: the server on core 0 with one worker, the load generator on
# core 1; tool: not pinned (its reader is a forked child).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=3
DUR=5
FAN=${FAN:-10000} # subscribers (e.g. FAN=500 for a smoke run)
while getopts "r:d:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) sed -n 2,20p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(tool server)
OUT=${OUT:-/tmp/hf-bench-sendpath}
mkdir -p "$OUT"
make -j2 build/holdfast >/dev/null
BIN=$PWD/build/holdfast
RAW="$OUT/sendpath-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "# bench-sendpath $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)" | tee "$RAW"

if [[ " ${PARTS[*]} " == *" tool "* ]]; then
  # not pinned: the tool's reader is a child and would inherit the core
  for k in 1 8 64; do
    "$BIN" bench -m sendpath -c 10000 -k "$k" -n 10 -r 30 | tee -a "$RAW" | grep -v '^RESULT'
  done
  for s in 16384 65536 262144; do
    "$BIN" bench -m sendpath -c 100 -s "$s" -n 200 -r 8 | tee -a "$RAW" | grep -v '^RESULT'
  done
fi

if [[ " ${PARTS[*]} " == *" server "* ]]; then
  PORT=19731
  run() { # uring phase bench-args...
    local u=$1 ph=$2
    shift 2
    taskset -c 0 "$BIN" serve --workers 1 --log.level warn --http_api.key=bench \
      --client.token.hmac_secret_key=bench-secret --http_server.io_uring_send="$u" \
      --channel.without_namespace='{"allow_subscribe_for_client":true}' \
      --listen 127.0.0.1:$PORT 2>"$OUT/server.log" &
    local p=$!
    for _ in $(seq 50); do # until it listens
      (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
      sleep 0.1
    done
    local line
    line=$(taskset -c 1 "$BIN" bench -m fanout -u ws://127.0.0.1:$PORT/connection/websocket \
      -A http://127.0.0.1:$PORT/api -K bench -t bench-secret -R $p -c "$FAN" -w 2 -d "$DUR" -S "$@" |
      grep '^RESULT' || true)
    kill $p
    wait $p || true
    echo "PHASE=$ph io_uring_send=$u $line" >>"$RAW"
    echo "$line" | python3 -c '
import sys
kv = dict(x.split("=", 1) for x in sys.stdin.read().split()[1:] if "=" in x)
d, c = float(kv.get("deliveries_per_s", 0)), float(kv.get("server_cpu", "0%").rstrip("%")) / 100
print("  %s io_uring_send=%-5s deliveries/s %9.0f  server CPU %3.0f%%  deliveries per server CPU-s %s  other_cpu %s  syscalls/delivery %s  status %s" % (
    sys.argv[1], sys.argv[2], d, 100 * c, "%.0f" % (d / c) if c else "-",
    kv.get("other_cpu", "-"), kv.get("syscalls_per_delivery", "-"), kv.get("status", "-")))' "$ph" "$u"
  }
  for r in $(seq "$REPEATS"); do
    for u in false true; do run $u A1 -r 100 -b 1; done
    for u in true false; do run $u A2 -r 300 -b 64; done
  done
fi
echo "raw lines: $RAW"
