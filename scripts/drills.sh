#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The failure drills (tests/drills/, docs/failure-drills.md): each starts the
# real holdfast (and `holdfast chaos`) on loopback with real clients (the
# centrifuge SDK in Node, raw sockets, `holdfast bench`), causes one failure
# and checks it was detected, explained, recovered from and hurt nobody
# else; prints a report per drill and ends with "N passed, N failed".
#   scripts/drills.sh                 the short drills (release build)
#   DRILLS=long scripts/drills.sh     all of them (restart and crash with
#                                     2,000 clients, half-open, flood)
#   DRILLS=slow,token scripts/drills.sh   drills whose names contain these
#   HOLDFAST_BIN=build/asan/holdfast scripts/drills.sh   another build
set -u
cd "$(dirname "$0")/.." || exit 2
NODE=${NODE:-/usr/bin/node}
if [ -z "${HOLDFAST_BIN:-}" ]; then
  make -j2 --no-print-directory build/holdfast >/dev/null || { echo "FAIL drills/build"; echo "0 passed, 1 failed"; exit 1; }
  HOLDFAST_BIN=$PWD/build/holdfast
fi
export HOLDFAST_BIN
if [ ! -d tests/interop/node_modules/centrifuge ] || [ ! -d tests/interop/node_modules/ws ]; then
  echo "FAIL drills/setup: tests/interop/node_modules is missing (run scripts/deps.sh)"
  echo "0 passed, 1 failed"
  exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec timeout 900 "$NODE" tests/drills/run.mjs
