#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: rate limits and the per-user connection limit as the official
# `centrifuge` npm SDK (Node) sees them. One server LIM: publish_rate 1/s per
# connection, 5 refusals in a burst before 3013, user_connection_limit 1;
# its config file (LIM_CONFIG) has a namespace that a SIGHUP reload removes.
# Cases are in centrifuge_limits.mjs.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_limits
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
open_ns='{"allow_subscribe_for_client":true,"allow_publish_for_client":true}'
LIM_CONFIG=$(mktemp /tmp/hf-interop-XXXXXX.json)
HF_TMP+=("$LIM_CONFIG")
export LIM_CONFIG
echo '{"channel":{"namespaces":[{"name":"gone","allow_subscribe_for_client":true}]}}' >"$LIM_CONFIG"
hf_start LIM --config "$LIM_CONFIG" --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY" \
  --channel.without_namespace="$open_ns" --client.rate_limit.publish_rate=1 \
  --client.rate_limit.disconnect_after=5 --client.user_connection_limit=1 || hf_exit

hf_run 120 "$NODE" tests/interop/centrifuge_limits.mjs

hf_stop LIM
hf_exit
