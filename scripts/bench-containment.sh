#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Containment benchmarks (issue 8), for a QUIET machine: prints figures, records nothing.
#   scripts/bench-containment.sh [-r REPEATS] [-d SECONDS] [-n STORM_CLIENTS] [parts...]
# parts (default all):
#   (FAN=N overrides the fan-out subscriber count, e.g. for a smoke run)
#   metrics  T1 echo (100 conns x 16 in flight x 32 B) and an F1-style fan-out
#            (10,000 subscribers, one channel) with metrics counting compiled in
#            (build/holdfast) and out (make METRICS=off: build/nometrics/holdfast),
#            interleaved per repeat; prints each run and the median ratio on/off.
#   storm    -n clients (default 5000) of the real-time endpoint dropped at once
#            reconnect with no backoff (holdfast bench -m reconnect --backoff none),
#            without and with client.accept_rate; meanwhile 10 existing echo
#            connections measure their round trips (holdfast bench -m echo -k 1),
#            compared with the same echo run on an idle server.
# Server alone on core 0 with one worker, load generators on core 1 (taskset).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=3
DUR=5
STORM=5000
while getopts "r:d:n:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    n) STORM=$OPTARG ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(metrics storm)
OUT=${OUT:-/tmp/hf-bench-containment}
mkdir -p "$OUT"
make -j2 build/holdfast >/dev/null
make -j2 METRICS=off build/nometrics/holdfast >/dev/null
ON=$PWD/build/holdfast
OFF=$PWD/build/nometrics/holdfast
BENCH="taskset -c 1 $ON bench"
SECRET=bench-containment-secret
PID=

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start BIN ARGS...: a server on core 0; sets PORT and PID
start() {
  local bin=$1; shift
  PORT=$(free_port)
  taskset -c 0 "$bin" serve --workers 1 --listen "127.0.0.1:$PORT" --log.level error \
    --client.token.hmac_secret_key="$SECRET" --http_api.key=bench \
    --channel.without_namespace='{"allow_subscribe_for_client":true}' "$@" 2>>"$OUT/server.log" &
  PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server did not start" >&2; stop; return 1
}
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; PID=; }
trap stop EXIT

# field NAME: a number from the last JSON line of stdin (read by pattern:
# the fan-out mode writes CPU figures as 13% there, which is not JSON)
field() { python3 -c 'import re,sys; l=[l for l in sys.stdin if l.startswith("{")]; m=re.search(r"\"%s\":([0-9.]+)" % sys.argv[1], l[-1] if l else ""); print(m.group(1) if m else "")' "$1"; }

if [[ " ${PARTS[*]} " == *" metrics "* ]]; then
  echo "== metrics: T1 echo and fan-out, counting on vs off ($REPEATS repeats, $DUR s)"
  : >"$OUT/metrics.txt"
  for r in $(seq "$REPEATS"); do
    for v in on off; do
      bin=$ON; [ $v = off ] && bin=$OFF
      start "$bin"
      t1=$($BENCH -m echo -u "ws://127.0.0.1:$PORT/echo" -c 100 -k 16 -s 32 -w 1 -d "$DUR" -R "$PID" -j | tee -a "$OUT/t1-$v.log" | field msgs_per_s)
      stop
      start "$bin"
      f1=$($BENCH -m fanout -u "ws://127.0.0.1:$PORT/connection/websocket" -A "http://127.0.0.1:$PORT/api" \
             -K bench -t "$SECRET" -R "$PID" -c "${FAN:-10000}" -r 100 -b 1 -w 2 -d "$DUR" -j | tee -a "$OUT/f1-$v.log" | field deliveries_per_s)
      stop
      echo "repeat $r metrics=$v T1_msgs_per_s=$t1 F1_deliveries_per_s=$f1" | tee -a "$OUT/metrics.txt"
    done
  done
  python3 - "$OUT/metrics.txt" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1])]
for k in ("T1_msgs_per_s", "F1_deliveries_per_s"):
    on = [float(r[k]) for r in rows if r["metrics"] == "on" and r[k]]
    off = [float(r[k]) for r in rows if r["metrics"] == "off" and r[k]]
    if on and off:
        print("%s median on %.0f off %.0f ratio on/off %.3f" % (k, statistics.median(on), statistics.median(off), statistics.median(on) / statistics.median(off)))
PY
fi

if [[ " ${PARTS[*]} " == *" storm "* ]]; then
  echo "== storm: $STORM clients reconnecting at once; 10 existing echo connections' RTT"
  probe() { $BENCH -m echo -u "ws://127.0.0.1:$PORT/echo" -c 10 -k 1 -s 32 -w 1 -d "$1" -j; }
  for limit in none 2000; do
    extra=(); [ $limit != none ] && extra=(--client.accept_rate=$limit --client.retry_after=1)
    start "$ON" "${extra[@]}"
    idle=$(probe 3 | tee -a "$OUT/storm-idle-$limit.log" | field p99_us)
    probe 20 >"$OUT/storm-rtt-$limit.log" &
    P=$!
    sleep 2
    $BENCH -m reconnect -u "ws://127.0.0.1:$PORT/connection/websocket" --rt -t "$SECRET" \
      -c "$STORM" --backoff none -j | tee "$OUT/storm-$limit.log" | grep -E "RESULT|all back|^\{" || true
    wait $P || true
    during=$(field p99_us <"$OUT/storm-rtt-$limit.log")
    echo "accept_rate=$limit echo_rtt_p99_us idle=$idle during_storm=$during"
    stop
  done
fi
