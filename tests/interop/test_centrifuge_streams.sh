#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: streams (recovery, presence, join/leave, history, fossil delta)
# with the official `centrifuge` npm SDK in Node against the real binary.
#   ONE  1 worker; TWO  2 workers; the same namespaces:
#   rec   history 30,000, force_recovery, slow_consumer_policy "recover"
#   tiny  history 50, force_recovery (recovery that cannot work)
#   pres  presence + join_leave; hist  history for clients; delta  fossil
# Small output queue (64 KiB) with a 300 ms grace, so a stalled reader is
# judged slow quickly. Cases are in centrifuge_streams.mjs.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_streams
NODE=${NODE:-/usr/bin/node}
hf_need_node_modules centrifuge ws || hf_exit

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
sub='"allow_subscribe_for_client":true'
ns='[{"name":"rec","history_size":30000,"history_ttl":"300s","force_recovery":true,"slow_consumer_policy":"recover",'$sub'},
 {"name":"tiny","history_size":50,"history_ttl":"300s","force_recovery":true,'$sub'},
 {"name":"pres","presence":true,"join_leave":true,"allow_presence_for_subscriber":true,'$sub'},
 {"name":"hist","history_size":1000,"history_ttl":"300s","allow_history_for_client":true,'$sub'},
 {"name":"delta","history_size":10,"history_ttl":"300s","allowed_delta_types":["fossil"],"delta_publish":true,'$sub'}]'
common=(--client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY"
  --channel.namespaces="$ns" --client.queue_max_size=65536 --client.queue_grace=300ms
  --websocket.close_timeout=500ms --client.recovery_max_publication_limit=0)

hf_start ONE "${common[@]}" || hf_exit
hf_start TWO "${common[@]}" --workers 2 || hf_exit

hf_run 300 "$NODE" tests/interop/centrifuge_streams.mjs

hf_stop ONE
hf_stop TWO
hf_exit
