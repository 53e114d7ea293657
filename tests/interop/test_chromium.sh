#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: headless Chromium (Debian's /usr/bin/chromium via playwright-core,
# no browser download) against the real binary ($HOLDFAST_BIN). A tiny Node
# HTTP server serves the page on 127.0.0.1:0; server OK allows the page's
# origin, server NO does not. Cases are in chromium.mjs; each server's clean
# exit (code 0, no sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init chromium
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core || hf_exit
hf_need_chromium || hf_exit
hf_start_page_server PAGE tests/interop/chromium.mjs || hf_exit

hf_start OK --client.allowed_origins="http://127.0.0.1:$PAGE_PORT" || hf_exit
hf_start NO --client.allowed_origins=https://app.example.com || hf_exit

# Chromium's first start can take a while: launch alone may use 30 s.
hf_run 90 "$NODE" tests/interop/chromium.mjs

hf_stop OK
hf_stop NO
kill -TERM "$PAGE_PID" 2>/dev/null
hf_exit
