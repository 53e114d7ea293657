#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Echo stability against the physical limit (issue 14): T1 (100 connections
# x 16 in flight x 32 B) and T3 (10 x 1 x 64 KiB) of the team's method
# (../shared/bench/wsload.c), holdfast and tcpecho (raw TCP) in alternating
# pairs: server on core 0 (one worker), generator on core 1, a fresh server
# per measurement. One run = R repeats (default 9 pairs of 2 s: the host's
# own noise moves over seconds to minutes, so many short alternating pairs
# cancel it better than a few long ones); the ratio of a run is the median
# of its pairs. The table also shows the generator's own CPU per message
# against each server (raw TCP / WebSocket) and their ratio: when the
# generator is saturated, the throughput ratio follows it. Prints one line
# per pair and a table per run; raw lines go to
# $OUT/echo-pairs-STAMP.txt.
#   scripts/bench-echo-pairs.sh [-n RUNS] [-r REPEATS] [-d SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
RUNS=3 REPEATS=9 DUR=2
while getopts "n:r:d:" o; do
  case $o in
    n) RUNS=$OPTARG ;;
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/hfecho}
mkdir -p "$OUT"
make -j2 build/holdfast >/dev/null
cc -O2 -Wall -o "$OUT/wsload" "$SHARED/bench/wsload.c"
cc -O2 -Wall -o "$OUT/tcpecho" "$SHARED/bench/tcpecho.c"
ulimit -n 20000 2>/dev/null || true
RES=$OUT/echo-pairs-$(date -u +%Y%m%dT%H%M%SZ).txt
echo "# started $(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) runs=$RUNS repeats=$REPEATS d=$DUR" | tee "$RES"
PORT_T=19105 PORT_H=19106
wait_port() { for _ in $(seq 1 50); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
measure() { # run rep test peer wsload-args...
  local run=$1 rep=$2 t=$3 peer=$4; shift 4
  local P port extra=()
  if [ "$peer" = tcpecho ]; then
    port=$PORT_T
    taskset -c 0 "$OUT/tcpecho" -p $port >/dev/null 2>&1 &
    P=$!
    extra=(-r)
  else
    port=$PORT_H
    taskset -c 0 "$ROOT/build/holdfast" serve --workers 1 --log.level error \
      --echo.handler_prefix / --listen 127.0.0.1:$port >/dev/null 2>&1 &
    P=$!
  fi
  wait_port $port
  sleep 0.3
  local line
  line=$(taskset -c 1 "$OUT/wsload" "${extra[@]}" -p $port "$@" -w 1 -d "$DUR" -R $P 2>/dev/null | grep '^RESULT' || echo "RESULT none")
  kill $P 2>/dev/null; wait $P 2>/dev/null || true
  echo "run=$run rep=$rep test=$t peer=$peer loadavg=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$RES"
}
for run in $(seq 1 "$RUNS"); do
  for rep in $(seq 1 "$REPEATS"); do
    measure "$run" "$rep" T1 tcpecho -c 100 -k 16 -s 32
    measure "$run" "$rep" T1 holdfast -c 100 -k 16 -s 32
    measure "$run" "$rep" T3 tcpecho -c 10 -k 1 -s 65536
    measure "$run" "$rep" T3 holdfast -c 10 -k 1 -s 65536
  done
done
echo "# finished $(date -u +%FT%TZ)" | tee -a "$RES"
python3 - "$RES" <<'PY'
import re, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    if not line.startswith("run="):
        continue
    kv = dict(re.findall(r"(\w+)=([^\s]+)", line))
    key = (int(kv["run"]), kv["test"], int(kv["rep"]))
    v = float(kv.get("msgs_per_s" if kv["test"] == "T1" else "MBps", 0) or 0)
    cpu = float(kv.get("server_cpu", "0%").rstrip("%") or 0)
    other = float(kv.get("other_cpu", "0%").rstrip("%") or 0)
    # the generator's own CPU per echoed message (us): raw TCP against
    # WebSocket (framing, masking, and how replies are batched); when it is
    # saturated the throughput ratio follows the ratio of the two
    ccpu = float(kv.get("client_cpu", "0%").rstrip("%") or 0)
    msgs = float(kv.get("msgs_per_s", 0) or 0)
    cus = ccpu * 1e4 / msgs if msgs else 0
    rows.setdefault(key, {})[kv["peer"]] = (v, cpu, other, cus, ccpu)
print("| run | test | tcpecho | holdfast | ratio (median [min-max]) | per server CPU-s ratio "
      "| generator us/msg raw / WS | generator cost ratio | generator CPU | most other_cpu |")
print("|---|---|---|---|---|---|---|---|---|---|")
for run in sorted({k[0] for k in rows}):
    for t in ("T1", "T3"):
        pairs = [rows[k] for k in sorted(rows) if k[0] == run and k[1] == t
                 and "tcpecho" in rows[k] and "holdfast" in rows[k]]
        if not pairs:
            continue
        r = [p["holdfast"][0] / p["tcpecho"][0] for p in pairs if p["tcpecho"][0]]
        c = [(p["holdfast"][0] / max(p["holdfast"][1], 1)) / (p["tcpecho"][0] / max(p["tcpecho"][1], 1))
             for p in pairs if p["tcpecho"][0]]
        te = statistics.median(p["tcpecho"][0] for p in pairs)
        hf = statistics.median(p["holdfast"][0] for p in pairs)
        oc = max(max(p["tcpecho"][2], p["holdfast"][2]) for p in pairs)
        cr = statistics.median(p["tcpecho"][3] for p in pairs)
        cw = statistics.median(p["holdfast"][3] for p in pairs)
        cc = min(min(p["tcpecho"][4], p["holdfast"][4]) for p in pairs)
        unit = "msgs/s" if t == "T1" else "MB/s"
        print(f"| {run} | {t} | {te:,.0f} {unit} | {hf:,.0f} {unit} | {statistics.median(r):.2f}x [{min(r):.2f}-{max(r):.2f}] "
              f"| {statistics.median(c):.2f}x | {cr:.2f} / {cw:.2f} | {cr / cw if cw else 0:.2f}x "
              f"| >= {cc:.0f} % | {oc:.0f} % |")
PY
echo "results: $RES"
