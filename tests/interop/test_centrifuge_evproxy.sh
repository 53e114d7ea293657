#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the official `centrifuge` npm SDK (v5, Node, npm `ws`) through
# holdfast's backend event proxy to a real HTTP backend
# (tests/integration/evproxy_backend.py, a separate process): cookie connect
# without a token, server-side channels, subscribe allowed/refused (103),
# publish rewritten, rpc(), a session kept by the refresh proxy, disconnect
# 4501 (terminal), and faults (garbage, slow past the 500 ms timeout, backend
# stopped and restarted on its port): the SDK backs off and recovers without
# a server restart while a token client is unaffected.
# Cases are in centrifuge_evproxy.mjs (which stops and restarts the backend).
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_evproxy
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws || hf_exit

hf_start_evproxy_backend || hf_exit

export HF_SECRET=holdfast-proxy-interop-secret-0123
ep() { printf '{"endpoint":"http://127.0.0.1:%s/%s","timeout":"500ms"%s}' "$BE_PORT" "$1" "${2:-}"; }
hf_start MAIN --client.token.hmac_secret_key="$HF_SECRET" \
  --client.expired_close_delay=2s --client.allowed_origins='*' \
  --client.proxy.connect="$(ep connect ',"enabled":true,"http_headers":["Cookie"]')" \
  --client.proxy.refresh="$(ep refresh ',"enabled":true')" \
  --channel.proxy.subscribe="$(ep subscribe)" --channel.proxy.publish="$(ep publish)" \
  --rpc.proxy="$(ep rpc)" --rpc.without_namespace='{"proxy_enabled":true}' \
  --channel.namespaces='[{"name":"open","subscribe_proxy_enabled":true,"publish_proxy_enabled":true},
    {"name":"secret","subscribe_proxy_enabled":true},{"name":"news"},
    {"name":"plain","allow_subscribe_for_client":true,"allow_publish_for_client":true}]' \
  --proxy.breaker_failures=3 --proxy.breaker_open=1s || hf_exit

hf_run 150 "$NODE" tests/interop/centrifuge_evproxy.mjs

hf_stop MAIN
hf_exit
