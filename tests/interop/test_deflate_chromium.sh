#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: permessage-deflate with headless Chromium (raw WebSocket on /echo)
# and the `centrifuge` SDK in Chromium (real-time endpoint) against the real
# binary ($HOLDFAST_BIN) with compression on. Cases are in
# deflate_chromium.mjs; the server's clean exit is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init deflate_chromium
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core centrifuge || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/deflate_chromium.mjs || hf_exit

export HF_SECRET=holdfast-deflate-secret-0123456789
export HF_API_KEY=holdfast-deflate-api-key
hf_start DFL --echo.compression=true --websocket.compression=true \
  --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY" \
  --channel.without_namespace='{"allow_subscribe_for_client":true}' \
  --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" || hf_exit

# Chromium's first start can take a while: launch alone may use 30 s.
hf_run 90 "$NODE" tests/interop/deflate_chromium.mjs

hf_stop DFL
kill -TERM "$PAGE_PID" 2>/dev/null
hf_exit
