#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fan-out benchmark of holdfast against uWebSockets' pub/sub (issue 14), with
# the team's reference method (../shared/bench/fanrun.sh, fanload): server on
# core 0 with one worker, generator on core 1, 10,000 subscribers of one
# channel, peers interleaved in every repeat. holdfast subscribers connect
# with an HS256 token; publications come through the server API (`--pub api`,
# pipelined keep-alive POST /api/publish), so pushes carry no `info`.
#   UWS_FAN=/path/to/uws_fan scripts/bench-fanout.sh [-r REPEATS] [-t "F1 F2 F3 M"] [-s] [peers...]
# Peers default to "uws hf". uWS is built outside the repository from a
# fetched snapshot (../shared/bench/README.md); it is skipped when absent.
# Raw results go to $OUT (default /tmp/hffan); the summary tables are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
[ -x "$SHARED/bench/fanrun.sh" ] || { echo "bench-fanout: $SHARED/bench/fanrun.sh not found (set SHARED=)"; exit 2; }
ARGS=()
while getopts "r:t:W:s" o; do
  case $o in
    r|t|W) ARGS+=("-$o" "$OPTARG") ;;
    s) ARGS+=(-s) ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(uws hf)
make -j2 build/holdfast >/dev/null
export OUT=${OUT:-/tmp/hffan}
mkdir -p "$OUT"
CONF=$OUT/hf-bench.json
cat >"$CONF" <<JSON
{"client":{"token":{"hmac_secret_key":"bench-secret"}},"http_api":{"key":"bench"},
 "channel":{"without_namespace":{"allow_subscribe_for_client":true,"allow_publish_for_client":true}}}
JSON
JWT=$("$ROOT/build/holdfast" gentoken --config "$CONF" --user bench --ttl 0)
PEER=$OUT/hf_peer.sh
cat >"$PEER" <<SH
#!/bin/sh
exec "$ROOT/build/holdfast" serve --config "$CONF" --workers \${HF_WORKERS:-1} --log.level warn --listen "127.0.0.1:\$1"
SH
chmod +x "$PEER"
export PEER_CMD_hf=$PEER PEER_MODE_hf=centrifugo
export PEER_ARGS_hf="--pub api --api-key bench --token $JWT --channel bench"
export UWS_FAN=${UWS_FAN:-/tmp/peers/uws_fan}
exec "$SHARED/bench/fanrun.sh" -o "$OUT" "${ARGS[@]}" "${PEERS[@]}"
