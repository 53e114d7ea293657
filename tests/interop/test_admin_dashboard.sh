#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the admin dashboard (/admin/) in headless Chromium (Debian's
# /usr/bin/chromium via playwright-core) against the real binary
# ($HOLDFAST_BIN) with two workers. admin_dashboard.mjs makes a scripted load
# (real-time clients, handshakes refused by origin, a slow consumer closed
# with 3008, commands refused by client.rate_limit, publications), logs in through the page, checks the figures in
# the page DOM, takes a screenshot into a temp dir and disconnects a client
# from the connection search.
. "$(dirname "$0")/lib.sh"
hf_init admin_dashboard
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules playwright-core ws || hf_exit
hf_need_chromium || hf_exit
hf_tmpdir DIR || hf_exit
export SHOT_DIR=$DIR
cat >"$DIR/config.json" <<'JSON'
{
  "workers": 2,
  "admin": {"enabled": true, "password": "dash-pass", "secret": "dash-secret-0123456789abcdef"},
  "client": {"token": {"hmac_secret_key": "dash-token-secret"},
             "allowed_origins": ["https://app.example.com"],
             "ping_interval": "5s", "pong_timeout": "4s",
             "queue_max_size": 4096, "queue_grace": "0s", "queue_hard_limit": 65536,
             "rate_limit": {"command_rate": 5, "command_burst": 20}},
  "http_api": {"key": "dash-api-key"},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true}}
}
JSON
hf_start SRV --config "$DIR/config.json" --workers 2 || hf_exit
hf_run 150 "$NODE" tests/interop/admin_dashboard.mjs
hf_stop SRV
[ -n "${KEEP_SHOT:-}" ] && cp "$DIR/dashboard.png" "$KEEP_SHOT"
hf_exit
