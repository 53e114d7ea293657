#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: the Redis engine with the official `centrifuge` npm SDK in Node.
# One Debian redis-server (append-only file fsynced on every write, so a
# restart keeps the streams) and three holdfast nodes A, B and C (2 workers
# each) sharing it. Cases are in centrifuge_redis.mjs; it restarts Redis itself
# (REDIS_CMD) and records the new pid in $REDIS_DIR/pid so it is killed here.
. "$(dirname "$0")/lib.sh"
hf_init centrifuge_redis
NODE=${NODE:-/usr/bin/node}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
hf_need_node_modules centrifuge ws || hf_exit
if [ ! -x "$REDIS_SERVER" ]; then
  hf_fail setup "no redis-server at $REDIS_SERVER (scripts/deps.sh installs it)"
  hf_exit
fi

hf_tmpdir REDIS_DIR || hf_exit
REDIS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REDIS_CMD="$REDIS_SERVER --port $REDIS_PORT --bind 127.0.0.1 --dir $REDIS_DIR --appendonly yes --appendfsync always --save '' --daemonize no --loglevel warning"
export REDIS_DIR REDIS_PORT REDIS_CMD
redis_cleanup() {
  [ -s "$REDIS_DIR/pid" ] && kill -KILL "$(cat "$REDIS_DIR/pid")" 2>/dev/null
  hf_cleanup
}
trap redis_cleanup EXIT
/bin/sh -c "exec $REDIS_CMD" >"$REDIS_DIR/log" 2>&1 &
echo $! >"$REDIS_DIR/pid"
disown
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
  sleep 0.05
done

export HF_SECRET=holdfast-interop-secret-0123456789
export HF_API_KEY=holdfast-interop-api-key
ns='[{"name":"rec","history_size":30000,"history_ttl":"300s","force_recovery":true,"allow_subscribe_for_client":true},
 {"name":"pres","presence":true,"join_leave":true,"allow_presence_for_subscriber":true,"allow_subscribe_for_client":true}]'
common=(--workers 2 --client.token.hmac_secret_key="$HF_SECRET" --http_api.key="$HF_API_KEY"
  --channel.namespaces="$ns" --websocket.close_timeout=500ms --client.recovery_max_publication_limit=0
  --engine.type=redis --engine.redis.address="127.0.0.1:$REDIS_PORT" --engine.redis.prefix=interop
  --engine.redis.connect_timeout=300ms --engine.redis.io_timeout=1s)

hf_start A "${common[@]}" --node.name=A || hf_exit
hf_start B "${common[@]}" --node.name=B || hf_exit
hf_start C "${common[@]}" --node.name=C || hf_exit

hf_run 300 "$NODE" tests/interop/centrifuge_redis.mjs

hf_stop A
hf_stop B
hf_stop C
hf_exit
