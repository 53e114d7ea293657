#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the official `centrifuge` npm SDK (v5, Node 20, npm `ws` as its
# WebSocket) against the real-time endpoint /connection/websocket of the real
# binary ($HOLDFAST_BIN). Four servers:
#   MAIN  HS256 secret, API key, channels without namespace open to clients,
#         namespace "locked" closed, expired_close_delay 1 s;
#   W2    the same with --workers 2 (publisher and subscribers on different
#         event loops);
#   PING  application ping every 1 s, pong timeout 500 ms, close_timeout 500 ms
#         (idle keep-alive and a blackholed connection);
#   DRAIN SIGTERMed by the client (3001 shutdown).
# Cases are in centrifuge_node.mjs; each server's clean exit (code 0, no
# sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_node
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
open_ns='{"allow_subscribe_for_client":true,"allow_publish_for_client":true}'
common=(--client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY"
  --channel.without_namespace="$open_ns"
  --channel.namespaces='[{"name":"locked"}]')

hf_start MAIN "${common[@]}" --client.expired_close_delay=1s \
  --websocket.close_timeout=1s || hf_exit
hf_start W2 "${common[@]}" --workers 2 || hf_exit
hf_start PING "${common[@]}" --client.ping_interval=1s --client.pong_timeout=500ms \
  --websocket.close_timeout=500ms || hf_exit
hf_start DRAIN "${common[@]}" --shutdown.timeout=5s || hf_exit

hf_run 120 "$NODE" tests/interop/centrifuge_node.mjs

hf_stop MAIN
hf_stop W2
hf_stop PING
hf_stop DRAIN
hf_exit
