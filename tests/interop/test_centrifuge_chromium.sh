#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the official `centrifuge` SDK's browser bundle (dist/centrifuge.js
# of the npm package installed here, served by a tiny Node HTTP server on
# 127.0.0.1:0; no CDN) in Debian's headless Chromium (/usr/bin/chromium via
# playwright-core, no browser download) against /connection/websocket of the
# real binary ($HOLDFAST_BIN). Server OK allows the page's origin, server NO
# does not. Cases are in centrifuge_chromium.mjs; each server's clean exit
# (code 0, no sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_chromium
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core centrifuge || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/centrifuge_chromium.mjs || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
common=(--client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY"
  --channel.without_namespace='{"allow_subscribe_for_client":true,"allow_publish_for_client":true}'
  --channel.namespaces='[{"name":"pres","presence":true,"join_leave":true,"allow_presence_for_subscriber":true,"allow_subscribe_for_client":true}]')
hf_start OK "${common[@]}" --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" || hf_exit
hf_start NO "${common[@]}" --client.allowed_origins=https://app.example.com || hf_exit

# Chromium's first start can take a while: launch alone may use 30 s.
hf_run 90 "$NODE" tests/interop/centrifuge_chromium.mjs

hf_stop OK
hf_stop NO
kill -TERM "$PAGE_PID" 2>/dev/null
hf_exit
