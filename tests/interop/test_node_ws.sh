#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the npm `ws` client (Node 20) against /echo of the real binary
# ($HOLDFAST_BIN). Three servers: MAIN (allowed origin, 1 MiB message
# limit, 2 s close timeout), KA (ping every 300 ms, pong timeout 200 ms) and
# DRAIN (SIGTERMed by the client to see 1001). Cases are in node_ws.mjs; each server's clean exit
# (code 0, no sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init node_ws
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules ws || hf_exit

export ALLOWED_ORIGIN=https://app.example.com
export MESSAGE_LIMIT=1048576
export CLOSE_TIMEOUT_MS=2000
hf_start MAIN --client.allowed_origins=$ALLOWED_ORIGIN \
  --websocket.message_size_limit=$MESSAGE_LIMIT \
  --websocket.close_timeout=${CLOSE_TIMEOUT_MS}ms || hf_exit
hf_start KA --websocket.ping_interval=300ms --websocket.pong_timeout=200ms || hf_exit
hf_start DRAIN --shutdown.timeout=5s || hf_exit

hf_run 60 "$NODE" tests/interop/node_ws.mjs

hf_stop MAIN
hf_stop KA
hf_stop DRAIN
hf_exit
