#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the `centrifuge` SDK's browser bundle in Debian's headless
# Chromium (playwright-core) against a real binary ($HOLDFAST_BIN) whose
# WebSocket endpoint is switched off (every upgrade gets 404, as behind a
# middlebox that blocks WebSocket): the SDK falls back to http_stream, or
# uses SSE when only SSE is listed, through cross-origin requests (CORS
# preflight) to the emulation endpoint. Cases in
# centrifuge_transports_chromium.mjs.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_transports_chromium
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core centrifuge || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/centrifuge_transports_chromium.mjs || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
ns='{"allow_subscribe_for_client":true,"allow_publish_for_client":true,"history_size":100,"history_ttl":"300s","force_recovery":true}'
hf_start NOWS --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY" \
  --channel.without_namespace="$ns" --websocket.enabled=false \
  --http_stream.enabled=true --sse.enabled=true \
  --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" || hf_exit

hf_run 120 "$NODE" tests/interop/centrifuge_transports_chromium.mjs

hf_stop NOWS
kill -TERM "$PAGE_PID" 2>/dev/null
hf_exit
