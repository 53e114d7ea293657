#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the official `centrifuge` npm SDK in Node with WebSocket blocked
# (a fake middlebox that refuses every upgrade, and a transports list
# without websocket) falls back to http_stream against the real binary
# ($HOLDFAST_BIN) and subscribes, receives, publishes, refreshes its token
# and recovers history after its stream is cut. One server, two workers.
# Cases are in centrifuge_transports.mjs.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_transports
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
ns='{"allow_subscribe_for_client":true,"allow_publish_for_client":true,"history_size":100,"history_ttl":"300s","force_recovery":true}'
hf_start MAIN --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY" \
  --channel.without_namespace="$ns" --http_stream.enabled=true --sse.enabled=true \
  --workers 2 || hf_exit

hf_run 120 "$NODE" tests/interop/centrifuge_transports.mjs

hf_stop MAIN
hf_exit
