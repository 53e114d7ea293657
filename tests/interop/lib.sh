# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared shell for the interop tests (sourced, not run). Starts the real
# holdfast binary ($HOLDFAST_BIN, default build/holdfast) on 127.0.0.1:0,
# logs its stderr to a temp file, reads the port from the JSON "listening"
# line, and stops it with SIGTERM, failing when the exit code is not 0 or the
# log shows a sanitizer report. Every wait is bounded; an EXIT trap kills
# whatever the script started (by pid) and removes its temp files.
#
#   . "$(dirname "$0")/lib.sh"        (cds to the repository root)
#   hf_init SUITE                      suite name for PASS/FAIL lines
#   hf_start NAME [FLAG...]            sets NAME_PID NAME_PORT NAME_LOG (exported)
#   hf_stop NAME                       SIGTERM (if still running), wait, check
#   hf_bg NAME CMD...                  start a helper in the background (killed at exit)
#   hf_run SECS CMD...                 run a client bounded by SECS (GNU timeout)
#   hf_tmpdir VAR                      make a temp dir removed at exit, path in VAR
#   hf_need_chromium                   fail setup unless $CHROMIUM (exported) runs
#   hf_start_page_server NAME SCRIPT   node SCRIPT serve-page; sets NAME_PID, NAME_PORT (exported)

set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
HF_ROOT=$PWD
export HF_ROOT
HOLDFAST_BIN=${HOLDFAST_BIN:-$HF_ROOT/build/holdfast}
export HOLDFAST_BIN
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Never let playwright (or anything else) fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export PLAYWRIGHT_BROWSERS_PATH=0

HF_SUITE=interop
HF_FAILED=0
HF_PIDS=()
HF_TMP=()
HF_SAN_RE='AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer|SUMMARY: '

hf_init() {
  HF_SUITE=interop/$1
  trap hf_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

hf_pass() { echo "PASS $HF_SUITE/$1"; }
hf_fail() {
  echo "FAIL $HF_SUITE/$1: $2"
  HF_FAILED=1
}

hf_cleanup() {
  local p
  for p in "${HF_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null
      wait "$p" 2>/dev/null
    fi
  done
  if [ -z "${HF_KEEP_LOGS:-}" ]; then
    for p in "${HF_TMP[@]}"; do
      rm -rf -- "$p"
    done
  elif [ ${#HF_TMP[@]} -gt 0 ]; then
    echo "# kept: ${HF_TMP[*]}"
  fi
}

hf_tmpdir() {
  local d
  d=$(mktemp -d /tmp/hf-interop-XXXXXX) || return 1
  HF_TMP+=("$d")
  printf -v "$1" %s "$d"
}

# Process state letter from /proc (Z = exited, not yet reaped); empty if gone.
hf_pstate() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }
  echo "${s%% *}"
}

hf_start() {
  local name=$1
  shift
  local log pid port="" i
  if [ ! -x "$HOLDFAST_BIN" ]; then
    hf_fail "$name-start" "no executable at $HOLDFAST_BIN (run make)"
    return 1
  fi
  log=$(mktemp /tmp/hf-interop-XXXXXX.log)
  HF_TMP+=("$log")
  "$HOLDFAST_BIN" serve --listen 127.0.0.1:0 --workers 1 "$@" </dev/null >/dev/null 2>"$log" &
  pid=$!
  HF_PIDS+=("$pid")
  for ((i = 0; i < 200; i++)); do
    port=$(sed -n '/"event":"listening"/{s/.*"port":\([0-9][0-9]*\).*/\1/p;q;}' "$log")
    [ -n "$port" ] && break
    case $(hf_pstate "$pid") in "" | Z) break ;; esac
    sleep 0.05
  done
  if [ -z "$port" ]; then
    hf_fail "$name-start" "server did not report listening within 10 s"
    sed 's/^/  /' "$log" | tail -n 20
    return 1
  fi
  printf -v "${name}_PID" %s "$pid"
  printf -v "${name}_PORT" %s "$port"
  printf -v "${name}_LOG" %s "$log"
  export "${name}_PID" "${name}_PORT" "${name}_LOG"
}

# hf_stop NAME: one PASS/FAIL line "NAME-exit": clean exit 0 after SIGTERM
# within 15 s, and no sanitizer report in the log.
hf_stop() {
  local name=$1 pidv=${1}_PID logv=${1}_LOG
  local pid=${!pidv:-} log=${!logv:-} i rc st
  [ -n "$pid" ] || return 1
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 150; i++)); do
    st=$(hf_pstate "$pid")
    [ -z "$st" ] || [ "$st" = Z ] && break
    sleep 0.1
  done
  st=$(hf_pstate "$pid")
  if [ -n "$st" ] && [ "$st" != Z ]; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    hf_fail "$name-exit" "server did not exit within 15 s of SIGTERM"
    tail -n 20 "$log" | sed 's/^/  /'
    return 1
  fi
  wait "$pid"
  rc=$?
  if grep -qE "$HF_SAN_RE" "$log"; then
    hf_fail "$name-exit" "server log shows a sanitizer report (exit code $rc)"
    grep -m1 -A40 -E "$HF_SAN_RE" "$log" | sed 's/^/  /'
    return 1
  fi
  if [ "$rc" -ne 0 ]; then
    hf_fail "$name-exit" "server exit code $rc after SIGTERM, expected 0"
    tail -n 20 "$log" | sed 's/^/  /'
    return 1
  fi
  hf_pass "$name-exit"
}

hf_bg() {
  local name=$1
  shift
  "$@" &
  printf -v "${name}_PID" %s "$!"
  HF_PIDS+=("$!")
}

# hf_run SECS CMD...: GNU timeout puts the client (and any browser it spawns)
# in its own process group and signals the whole group when time is up.
hf_run() {
  local secs=$1 rc
  shift
  timeout -k 5 "$secs" "$@"
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    hf_fail client "$(basename "${2:-$1}") timed out after ${secs}s"
  elif [ "$rc" -gt 1 ]; then
    hf_fail client "$(basename "${2:-$1}") exited with status $rc"
  elif [ "$rc" -eq 1 ]; then
    HF_FAILED=1
  fi
  return "$rc"
}

# hf_need_chromium: $CHROMIUM (default /usr/bin/chromium, exported for the
# client) must be executable, else a FAIL setup line.
hf_need_chromium() {
  export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  if [ ! -x "$CHROMIUM" ]; then
    hf_fail setup "no Chromium at $CHROMIUM (apt-get install chromium)"
    return 1
  fi
}

# hf_start_page_server NAME SCRIPT: start `$NODE SCRIPT serve-page PORTFILE`
# (NODE defaults to /usr/bin/node) in the background, killed at exit, and
# wait up to 10 s for it to write its port to PORTFILE (in a temp dir).
# Sets NAME_PID and NAME_PORT (exported).
hf_start_page_server() {
  local name=$1 script=$2 dir portfile i
  hf_tmpdir dir || return 1
  portfile=$dir/page-port
  hf_bg "$name" "${NODE:-/usr/bin/node}" "$script" serve-page "$portfile"
  for ((i = 0; i < 100; i++)); do
    [ -s "$portfile" ] && break
    sleep 0.1
  done
  if [ ! -s "$portfile" ]; then
    hf_fail setup "page server did not start within 10 s"
    return 1
  fi
  printf -v "${name}_PORT" %s "$(cat "$portfile")"
  export "${name}_PORT"
}

hf_need_node_modules() {
  local m
  for m in "$@"; do
    if [ ! -d "$HF_ROOT/tests/interop/node_modules/$m" ]; then
      hf_fail setup "tests/interop/node_modules/$m missing (run scripts/deps.sh)"
      return 1
    fi
  done
}

# hf_start_evproxy_backend: tests/integration/evproxy_backend.py (the event
# proxy's application backend) on 127.0.0.1:0, killed at exit; sets BE_PID
# and BE_PORT (exported).
hf_start_evproxy_backend() {
  local dir i
  hf_tmpdir dir || return 1
  hf_bg BE python3 tests/integration/evproxy_backend.py --port 0 >"$dir/port" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    grep -q '^PORT ' "$dir/port" 2>/dev/null && break
    sleep 0.1
  done
  BE_PORT=$(sed -n 's/^PORT //p' "$dir/port")
  [ -n "$BE_PORT" ] || { hf_fail setup "the event proxy backend did not start"; return 1; }
  export BE_PORT BE_PID
}

hf_exit() {
  exit "$HF_FAILED"
}
