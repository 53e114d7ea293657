#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Event proxy benchmark (docs/benchmarks.md): holdfast (one worker, core 0)
# with the connect and rpc proxies pointing at a minimal Node backend
# (scripts/bench-evproxy-backend.mjs, core 1), the load generator
# (scripts/bench-evproxy.mjs, npm `ws`, core 1), all on 127.0.0.1:
#   connects/s and p50/p99 with a token (verified locally) vs through the
#   connect proxy (cookie, no token): the proxy's added latency;
#   RPCs/s and p50/p99 through the rpc proxy vs the same answer fetched
#   directly from the backend.
#   scripts/bench-evproxy.sh [-r REPEATS]   (N=2000 C=50 K=50 D=5 by default)
# Raw RESULT lines go to $OUT (default /tmp/hf-proxy-bench.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
REPEATS=1
while getopts "r:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/hf-proxy-bench.txt}
NODE=${NODE:-/usr/bin/node}
HF=$PWD/build/holdfast
make -j2 build/holdfast >/dev/null || exit 1
export HF_SECRET=bench-evproxy-secret-0123456789
TMP=$(mktemp -d /tmp/hf-proxy-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

taskset -c 1 "$NODE" scripts/bench-evproxy-backend.mjs >"$TMP/be" &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do grep -q '^PORT ' "$TMP/be" && break; sleep 0.1; done
export BE_PORT
BE_PORT=$(sed -n 's/^PORT //p' "$TMP/be")
[ -n "$BE_PORT" ] || { echo "backend did not start" >&2; exit 1; }

: >"$OUT"
for ((r = 1; r <= REPEATS; r++)); do
  ep() { printf '{"endpoint":"http://127.0.0.1:%s/%s"%s}' "$BE_PORT" "$1" "${2:-}"; }
  taskset -c 0 "$HF" serve --listen 127.0.0.1:0 --workers 1 \
    --client.token.hmac_secret_key="$HF_SECRET" \
    --client.proxy.connect="$(ep connect ',"enabled":true,"http_headers":["Cookie"]')" \
    --rpc.proxy="$(ep rpc)" --rpc.without_namespace='{"proxy_enabled":true}' \
    2>"$TMP/hf.log" &
  hfpid=$!
  PIDS+=("$hfpid")
  HF_PORT=""
  for ((i = 0; i < 100; i++)); do
    HF_PORT=$(sed -n '/"event":"listening"/{s/.*"port":\([0-9][0-9]*\).*/\1/p;q;}' "$TMP/hf.log" 2>/dev/null)
    [ -n "$HF_PORT" ] && break
    sleep 0.05
  done
  [ -n "$HF_PORT" ] || { echo "holdfast did not start" >&2; cat "$TMP/hf.log" >&2; exit 1; }
  echo "# repeat $r" | tee -a "$OUT"
  HF_PORT=$HF_PORT taskset -c 1 timeout 300 "$NODE" scripts/bench-evproxy.mjs | tee -a "$OUT"
  kill -TERM "$hfpid"
  wait "$hfpid"
done
