#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the `centrifuge` SDK in headless Chromium through the backend
# event proxy (cookie from the page, no token) to evproxy_backend.py; cases in
# centrifuge_evproxy_chromium.mjs.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_evproxy_chromium
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core centrifuge || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/centrifuge_evproxy_chromium.mjs || hf_exit

hf_start_evproxy_backend || hf_exit

ep() { printf '{"endpoint":"http://127.0.0.1:%s/%s","timeout":"500ms"%s}' "$BE_PORT" "$1" "${2:-}"; }
hf_start MAIN --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" --client.expired_close_delay=2s \
  --client.proxy.refresh="$(ep refresh ',"enabled":true')" \
  --client.proxy.connect="$(ep connect ',"enabled":true,"http_headers":["Cookie"]')" \
  --channel.proxy.subscribe="$(ep subscribe)" --channel.proxy.publish="$(ep publish)" \
  --rpc.proxy="$(ep rpc)" --rpc.without_namespace='{"proxy_enabled":true}' \
  --channel.namespaces='[{"name":"open","subscribe_proxy_enabled":true,"publish_proxy_enabled":true},
    {"name":"secret","subscribe_proxy_enabled":true},{"name":"news"}]' || hf_exit

hf_run 90 "$NODE" tests/interop/centrifuge_evproxy_chromium.mjs

hf_stop MAIN
kill -TERM "$PAGE_PID" "$BE_PID" 2>/dev/null
hf_exit
