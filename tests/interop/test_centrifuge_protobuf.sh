#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the official `centrifuge` SDK's Protobuf build, unchanged, in Node
# (centrifuge/build/protobuf + npm ws) and in Debian's headless Chromium
# (dist/centrifuge.protobuf.js from the npm package, no CDN) against
# /connection/websocket of the real binary ($HOLDFAST_BIN), beside JSON
# clients of the same channels. One server MAIN: HS256 secret, API key,
# channels without namespace open to clients, namespace "rec" with history
# and forced recovery, expired_close_delay 1 s, the page's origin allowed,
# http_stream (and /emulation) on, permessage-deflate on (Chromium and ws negotiate it: the Protobuf pushes
# are then compressed once per publication too).
# Cases are in centrifuge_protobuf.mjs; the server's clean exit (code 0, no
# sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_protobuf
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws playwright-core || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/centrifuge_protobuf.mjs || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
open='"allow_subscribe_for_client":true,"allow_publish_for_client":true'
hf_start MAIN --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY" \
  --channel.without_namespace="{$open}" \
  --channel.namespaces='[{"name":"rec","history_size":100,"history_ttl":"300s","force_recovery":true,"allow_history_for_client":true,'"$open"'}]' \
  --client.expired_close_delay=1s --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" \
  --websocket.compression=true --http_stream.enabled=true || hf_exit

hf_run 120 "$NODE" tests/interop/centrifuge_protobuf.mjs

hf_stop MAIN
kill -TERM "$PAGE_PID" 2>/dev/null
hf_exit
