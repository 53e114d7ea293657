#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TLS benchmark: T1 (100 x 16 x 32 B), T3 (10 x 1 x 64 KiB), T4 (5000
# handshakes, 64 pending) and T5 (10,000 idle connections, RSS per
# connection) against, interleaved in each repeat:
#   plain       holdfast ws:// (the reference for the TLS ratios)
#   tls         holdfast wss:// (TLS on holdfast's event loop; kernel TLS
#               when the kernel offers it)
#   tls-user    the same with http_server.tls.ktls=false (only run when the
#               kernel offers kTLS: then tls vs tls-user is kTLS vs user space)
#   nginx-tls   Debian's nginx (1 worker) terminating TLS in front of plain
#               holdfast, both on the server core
#   node-tls    Node `ws` over https (scripts/bench-peers/ws_tls_echo.js)
# Servers are pinned to core 0 with one worker, the load generator
# (`holdfast bench`, wss:// mode, no certificate verification) to core 1.
# T5 runs against a fresh server process. kTLS is reported from holdfast's
# tls_ready log line (the kernel needs the "tls" module).
#   scripts/bench-tls.sh [-r REPEATS] [-d SECONDS] [targets...]
# Raw RESULT lines go to $OUT/raw.txt (default /tmp/hfbench-tls); a table of
# medians and ratios is printed at the end. Run on a quiet machine.
# STORM_N / IDLE_N override the T4 / T5 counts (a quick check of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEATS=3
DUR=5
while getopts "r:d:" o; do
  case $o in
    r) REPEATS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) sed -n 2,17p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
TARGETS=("$@")
# kernel TLS: load the module if we can, then measure both ways if it is there
modprobe tls 2>/dev/null || true
KTLS=no
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && KTLS=yes
echo "bench-tls: kernel TLS available: $KTLS"
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(plain tls nginx-tls node-tls)
  [ $KTLS = yes ] && TARGETS=(plain tls tls-user nginx-tls node-tls)
fi

make -j2 build/holdfast >/dev/null
HF=$ROOT/build/holdfast
NODE=${NODE:-/usr/bin/node}
OUT=${OUT:-/tmp/hfbench-tls}
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"
TMP=$(mktemp -d /tmp/hfbench-tls.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
chmod 644 "$TMP/key.pem"
chmod 755 "$TMP"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-tls: nothing listens on $1" >&2
  return 1
}

# start TARGET: starts the server(s); sets URL and SPID (the process whose
# CPU and RSS are reported: holdfast, nginx's worker, node).
start() {
  local p hp
  p=$(port)
  case $1 in
    plain)
      taskset -c 0 "$HF" serve --workers 1 --log.level warn --echo.handler_prefix / \
        --http_server.port "$p" 2>>"$OUT/server.log" &
      SPID=$!; PIDS+=("$SPID"); URL="ws://127.0.0.1:$p/" ;;
    tls|tls-user)
      local ktls=true
      [ "$1" = tls-user ] && ktls=false
      taskset -c 0 "$HF" serve --workers 1 --log.level "${TLS_LOG_LEVEL:-warn}" \
        --echo.handler_prefix / \
        --http_server.port "$p" --http_server.tls.enabled=true --http_server.tls.ktls=$ktls \
        --http_server.tls.cert_pem_file="$TMP/cert.pem" \
        --http_server.tls.key_pem_file="$TMP/key.pem" 2>"$TMP/tls.log" &
      SPID=$!; PIDS+=("$SPID"); URL="wss://127.0.0.1:$p/" ;;
    nginx-tls)
      hp=$(port)
      taskset -c 0 "$HF" serve --workers 1 --log.level warn --echo.handler_prefix / \
        --http_server.port "$hp" --http_server.trusted_proxies=127.0.0.1/32 \
        2>>"$OUT/server.log" &
      PIDS+=("$!")
      mkdir -p "$TMP/nginx"
      cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 20000; }
worker_rlimit_nofile 40000;
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fcgi; uwsgi_temp_path $TMP/nginx/uwsgi; scgi_temp_path $TMP/nginx/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream hf { server 127.0.0.1:$hp; keepalive 64; }
  server {
    listen 127.0.0.1:$p ssl;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    location / {
      proxy_pass http://hf;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 300s;
      proxy_buffering off;
    }
  }
}
EOF
      taskset -c 0 /usr/sbin/nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" \
        -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
      PIDS+=("$!")
      wait_port "$p"
      SPID=$(pgrep -P "${PIDS[-1]}" | head -1); URL="wss://127.0.0.1:$p/" ;;
    node-tls)
      NODE_PATH=$ROOT/tests/interop/node_modules taskset -c 0 "$NODE" \
        scripts/bench-peers/ws_tls_echo.js "$p" "$TMP/cert.pem" "$TMP/key.pem" \
        2>>"$OUT/server.log" &
      SPID=$!; PIDS+=("$SPID"); URL="wss://127.0.0.1:$p/" ;;
    *) echo "bench-tls: unknown target $1" >&2; exit 2 ;;
  esac
  wait_port "$p"
}
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}
gen() { # gen TARGET TEST args...: one run of the generator on core 1
  local t=$1 test=$2
  shift 2
  local line
  line=$(taskset -c 1 "$HF" bench -u "$URL" -R "$SPID" "$@" 2>/dev/null | grep '^RESULT ' || true)
  echo "target=$t test=$test ${line#RESULT }" | tee -a "$RAW"
}

# Is kernel TLS used? One connection to an info-level server shows it.
TLS_LOG_LEVEL=info start tls
taskset -c 1 "$HF" bench -m storm -u "$URL" -c 1 >/dev/null 2>&1 || true
sleep 0.5
echo "bench-tls: $(grep -o '"ktls":"[^"]*"' "$TMP/tls.log" | head -1)," \
  "upgrade: $(grep -o '"ktls":\(true\|false\)' "$TMP/tls.log" | head -1)" | tee -a "$OUT/ktls.txt"
stop_all

for r in $(seq "$REPEATS"); do
  for t in "${TARGETS[@]}"; do
    start "$t"
    gen "$t" T1 -c 100 -k 16 -s 32 -w 1 -d "$DUR"
    gen "$t" T3 -c 10 -k 1 -s 65536 -b -w 1 -d "$DUR"
    gen "$t" T4 -m storm -c "${STORM_N:-5000}" -C 64
    stop_all
    start "$t" # T5: a fresh process
    gen "$t" T5 -m idle -c "${IDLE_N:-10000}" -H 2
    stop_all
  done
done

python3 - "$RAW" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
key = {"T1": "msgs_per_s", "T3": "MBps", "T4": "handshakes_per_s", "T5": "rss_per_conn_bytes"}
for line in open(sys.argv[1]):
    kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
    t, test = kv.get("target"), kv.get("test")
    if kv.get("status") != "ok" or test not in key:
        continue
    rows[(t, test)].append(float(kv[key[test]].rstrip("%")))
    cpu = kv.get("server_cpu", "").rstrip("%")
    if test == "T1" and cpu and float(cpu) > 0:  # per server core: fair when the
        rows[(t, "T1c")].append(float(kv["msgs_per_s"]) / (float(cpu) / 100))  # generator is the limit
targets = []
for (t, _) in rows:
    if t not in targets:
        targets.append(t)
med = {k: statistics.median(v) for k, v in rows.items()}
print("\n| target | T1 msgs/s | T1 msgs per server CPU-second | T3 MB/s | T4 handshakes/s | T5 B/conn |")
print("|---|---|---|---|---|---|")
for t in targets:
    cells = []
    for test in ("T1", "T1c", "T3", "T4", "T5"):
        v = rows.get((t, test))
        cells.append("%s [%s-%s]" % (f"{med[(t, test)]:,.0f}", f"{min(v):,.0f}", f"{max(v):,.0f}") if v else "-")
    print("| %s | %s |" % (t, " | ".join(cells)))
def ratio(a, b, test):
    if (a, test) in med and (b, test) in med and med[(b, test)]:
        return "%.2fx" % (med[(a, test)] / med[(b, test)])
    return "-"
print("\nholdfast TLS vs plain holdfast: T1 %s, T3 %s, T4 %s, T5 %s" %
      tuple(ratio("tls", "plain", x) for x in ("T1", "T3", "T4", "T5")))
print("  per server CPU-second, T1: %s (use this one when the generator, which does TLS too, is the limit)" %
      ratio("tls", "plain", "T1c"))
if ("tls-user", "T1") in med:
    print("kernel TLS vs user-space TLS (holdfast): T1 %s, T3 %s, T4 %s, T5 %s" %
          tuple(ratio("tls", "tls-user", x) for x in ("T1", "T3", "T4", "T5")))
print("holdfast TLS vs nginx TLS in front of holdfast: T1 %s, T3 %s, T4 %s, T5 %s" %
      tuple(ratio("tls", "nginx-tls", x) for x in ("T1", "T3", "T4", "T5")))
print("holdfast TLS vs Node ws over https: T1 %s, T3 %s, T4 %s, T5 %s" %
      tuple(ratio("tls", "node-tls", x) for x in ("T1", "T3", "T4", "T5")))
PY
