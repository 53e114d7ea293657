#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Multi-worker fan-out (issue 14): 10,000 subscribers of one channel, spread
# over 1 or 2 workers, the same publication load through /api/batch; reports
# deliveries per server CPU-second for each, their ratio, and checks with
# the server's own counters that a publication was encoded once
# (holdfast_push_frames_encoded_total) however many workers deliver it.
# 1 worker: server on core 0; 2 workers: server on cores 0-1; the generator
# (holdfast bench) on core 1 in both. Repeats alternate the two.
#   scripts/bench-workers.sh [-r REPEATS] [-p PUBS_PER_S] [-c SUBSCRIBERS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEATS=3 RATE=200 SUBS=10000
while getopts "r:p:c:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    p) RATE=$OPTARG ;;
    c) SUBS=$OPTARG ;;
    *) sed -n 2,11p "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/hfworkers}
mkdir -p "$OUT"
make -j2 build/holdfast >/dev/null
ulimit -n 40000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
RES=$OUT/workers-$(date -u +%Y%m%dT%H%M%SZ).txt
echo "# started $(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) repeats=$REPEATS rate=$RATE subs=$SUBS" | tee "$RES"
PORT=19107
for rep in $(seq 1 "$REPEATS"); do
  for W in 1 2; do
    cores=0; [ "$W" = 2 ] && cores=0-1
    taskset -c $cores "$ROOT/build/holdfast" serve --workers $W --log.level error --http_api.key=bench \
      --client.token.hmac_secret_key=bench-secret \
      --channel.without_namespace='{"allow_subscribe_for_client":true}' \
      --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
    P=$!
    for _ in $(seq 1 50); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
    line=$(taskset -c 1 "$ROOT/build/holdfast" bench -m fanout -u ws://127.0.0.1:$PORT/connection/websocket \
      -A http://127.0.0.1:$PORT/api -K bench -t bench-secret -R $P -c "$SUBS" -w 2 -d 5 \
      -r "$RATE" -b 64 2>/dev/null | grep '^RESULT' || echo "RESULT none")
    m=$(curl -s http://127.0.0.1:$PORT/metrics | awk '/^holdfast_push_frames_encoded_total /{e=$2} /^holdfast_fanout_latency_seconds_count /{s=$2} END{printf "frames_encoded=%d sweeps=%d", e, s}')
    kill $P; wait $P 2>/dev/null || true
    echo "rep=$rep workers=$W loadavg=$(cut -d' ' -f1 /proc/loadavg) $m $line" | tee -a "$RES"
  done
done
echo "# finished $(date -u +%FT%TZ)" | tee -a "$RES"
python3 - "$RES" <<'PY'
import re, sys, statistics
per = {1: [], 2: []}
enc = {1: [], 2: []}
for line in open(sys.argv[1]):
    if not line.startswith("rep="):
        continue
    kv = dict(re.findall(r"(\w+)=([^\s]+)", line))
    w = int(kv["workers"])
    d = float(kv.get("deliveries_per_s", 0) or 0)
    cpu = float(kv.get("server_cpu", "0%").rstrip("%") or 0)
    if d and cpu:
        per[w].append(d / (cpu / 100))
    pubs = float(kv.get("published", kv.get("pubs", 0)) or 0)
    enc[w].append((int(kv.get("frames_encoded", 0)), int(kv.get("sweeps", 0))))
print("| workers | deliveries per server CPU-s (median [min-max]) | frames encoded / sweeps (per run) |")
print("|---|---|---|")
for w in (1, 2):
    if per[w]:
        print(f"| {w} | {statistics.median(per[w]):,.0f} [{min(per[w]):,.0f}-{max(per[w]):,.0f}] | "
              + ", ".join(f"{e} / {s}" for e, s in enc[w]) + " |")
if per[1] and per[2]:
    print(f"2 workers / 1 worker: {statistics.median(per[2]) / statistics.median(per[1]):.2f}x")
PY
echo "results: $RES"
