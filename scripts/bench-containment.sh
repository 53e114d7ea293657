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
#   storm    -n clients (default 5000) of the real-time endpoint (connect with a
#            token) lose their connection at once and reconnect with the SDK's
#            backoff (holdfast bench -m reconnect --backoff jitter), with
#            client.accept_rate=2000 switched on by a reload after the set-up
#            and without it, with client.handshake_budget_us 50 (default) and 0;
#            the bench's separate probe process (SCHED_FIFO) measures 10 other
#            echo connections' round trips before the drop and during the storm.
# Server alone on core 0 with one worker, load generators on core 1 (taskset).
# SERVER_CHRT=N runs the server at SCHED_FIFO priority N (shields it from other
# processes on a machine that is not quiet; the probe already asks for FIFO 1).
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
[[ " ${PARTS[*]} " == *" metrics "* ]] && make -j2 METRICS=off build/nometrics/holdfast >/dev/null
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
  ${SERVER_CHRT:+chrt -f "$SERVER_CHRT"} taskset -c 0 "$bin" serve --workers 1 --listen "127.0.0.1:$PORT" --log.level error \
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
  # The method (docs/benchmarks.md, "Reconnect storm"): server alone on core 0
  # (one worker); the storm generator on core 1; the RTT probe is a separate
  # process forked by the bench, also on core 1 but at SCHED_FIFO priority, so
  # the generator never delays its wake-ups; the set-up phase is not limited;
  # client.accept_rate is switched on by a SIGHUP reload between the set-up
  # and the drop (--before-drop); then every client loses its connection at
  # once (reset, as after a network cut) and reconnects with the SDK's
  # full-jitter backoff. Interleaved: handshake budget on (the default) / off.
  echo "== storm: $STORM clients reconnecting at once; probe echo RTT before and during ($REPEATS repeats)"
  CFG=$OUT/storm-config.json
  : >"$OUT/storm.txt"
  for r in $(seq "$REPEATS"); do
    for budget in 50 0; do
      for limit in 2000 none; do
        echo '{}' >"$CFG"
        start "$ON" --config "$CFG" --client.handshake_budget_us=$budget
        before=true
        [ $limit != none ] && before="echo '{\"client\":{\"accept_rate\":$limit,\"retry_after\":1}}' >$CFG && kill -HUP $PID && sleep 0.3"
        line=$("$ON" bench -m reconnect -u "ws://127.0.0.1:$PORT/connection/websocket" --rt -t "$SECRET" \
          -c "$STORM" --backoff jitter --cpu 1 --probe "ws://127.0.0.1:$PORT/echo" --probe-cpu 1 \
          --before-drop "$before" -j | tee -a "$OUT/storm-$budget-$limit.log" | grep '^RESULT' || true)
        stop
        val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        echo "repeat $r budget_us=$budget accept_rate=$limit all_back_s=$(val all_back_s) attempts=$(val attempts)" \
          "probe_p50_us=$(val probe_base_p50_us)/$(val probe_storm_p50_us)" \
          "probe_p99_us=$(val probe_base_p99_us)/$(val probe_storm_p99_us) ratio=$(val probe_p99_ratio)" \
          "fifo=$(val probe_fifo) status=$(val status)" | tee -a "$OUT/storm.txt"
      done
    done
  done
  python3 - "$OUT/storm.txt" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1])]
for b in ("50", "0"):
    for lim in ("2000", "none"):
        rs = [r for r in rows if r["budget_us"] == b and r["accept_rate"] == lim and r.get("ratio")]
        if rs:
            med = lambda k: statistics.median(float(r[k]) for r in rs)
            print("budget_us=%s accept_rate=%s median: all_back_s %.3f, probe p99 ratio (storm/idle) %.2f"
                  % (b, lim, med("all_back_s"), med("ratio")))
PY
fi
