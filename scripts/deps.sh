#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what holdfast needs to build and test, only if missing: Debian
# packages with apt-get, npm test clients with `npm ci` from the committed
# lock file. Nothing else is downloaded. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(make gcc pkg-config libjansson-dev libssl-dev libhiredis-dev libc-ares-dev zlib1g-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler liburing-dev openssl redis-server prometheus
      clang libclang-rt-14-dev llvm
      python3 python3-websockets curl procps iproute2 chromium nginx haproxy)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from a nodejs package that bundles npm (and conflicts with
# Debian's separate npm package): ask for the commands, not the packages.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm test clients (ws, playwright-core, centrifuge), pinned by the lock file
if [ -f tests/interop/package-lock.json ]; then
  stamp=tests/interop/node_modules/.holdfast-lock
  if [ ! -f "$stamp" ] || ! cmp -s tests/interop/package-lock.json "$stamp"; then
    echo "deps: npm ci in tests/interop"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp tests/interop/package-lock.json "$stamp"
  fi
fi
