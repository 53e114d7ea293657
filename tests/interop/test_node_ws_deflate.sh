#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the npm `ws` client with perMessageDeflate against /echo of the
# real binary ($HOLDFAST_BIN). Three servers: DFL (echo.compression),
# TAKE (also client context takeover) and OFF (compression off). Cases are
# in node_ws_deflate.mjs; each server's clean exit is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init node_ws_deflate
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules ws || hf_exit

hf_start DFL --echo.compression=true || hf_exit
hf_start TAKE --echo.compression=true --websocket.compression_context_takeover=true || hf_exit
hf_start OFF || hf_exit

hf_run 120 "$NODE" tests/interop/node_ws_deflate.mjs

hf_stop DFL
hf_stop TAKE
hf_stop OFF
hf_exit
