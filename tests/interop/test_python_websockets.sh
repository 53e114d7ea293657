#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: Debian's Python `websockets` 10.4 (/usr/bin/python3) against /echo
# of the real binary ($HOLDFAST_BIN), one server allowing one origin and
# selecting subprotocol "chat". Cases are in python_websockets.py; the
# server's clean exit (code 0, no sanitizer report) is a case of its own.
. "$(dirname "$0")/lib.sh"
hf_init python_websockets
PY=${PY:-/usr/bin/python3}
if ! "$PY" -c 'import websockets' 2>/dev/null; then
  hf_fail setup "$PY cannot import websockets (apt-get install python3-websockets)"
  hf_exit
fi

hf_start MAIN --client.allowed_origins=https://app.example.com \
  --echo.subprotocols=chat || hf_exit

hf_run 60 "$PY" tests/interop/python_websockets.py

hf_stop MAIN
hf_exit
