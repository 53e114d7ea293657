#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Echo benchmark of holdfast against the reference peers, with the team's
# reference method (../shared/bench/run.sh): tcpecho (raw TCP, the physical
# limit), libwebsockets, Node ws, Python websockets and holdfast, interleaved,
# server pinned to core 0 with one worker, load generator on core 1.
#   scripts/bench.sh [-r REPEATS] [-d SECONDS] [peers...]
# Prints the summary tables; raw results go to $OUT (default /tmp/hfbench).
# Benchmark-only dependencies (libwebsockets-dev, linux-perf) are installed
# here, not by scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
[ -x "$SHARED/bench/run.sh" ] || { echo "bench: $SHARED/bench/run.sh not found (set SHARED=)"; exit 2; }
REPEATS=3
DUR=5
while getopts "r:d:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) sed -n 2,11p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(tcpecho lws node python holdfast)

scripts/deps.sh
missing=()
for p in libwebsockets-dev linux-perf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
make -j2 build/holdfast >/dev/null

export NODE_MODULES=$ROOT/tests/interop/node_modules
export PEER_CMD_holdfast="$ROOT/build/holdfast serve --workers 1 --log.level warn --echo.handler_prefix / --http_server.port"
export OUT=${OUT:-/tmp/hfbench}
"$SHARED/bench/run.sh" -r "$REPEATS" -d "$DUR" -o "$OUT" -s "${PEERS[@]}"
