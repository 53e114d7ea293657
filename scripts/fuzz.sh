#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build and run the libFuzzer targets: every tests/fuzz/fuzz_*.c is one
# target, linked against all of lib/, so new targets are picked up without
# editing this script. A target that needs more sources names them, relative
# to the repository root, on a line of its own:
#   // fuzz-sources: server/auth/jwt.c
#
#   scripts/fuzz.sh build            compile into build/fuzz/<name> (the
#                                    targets whose sources changed)
#   scripts/fuzz.sh run [SECONDS]    fuzz each target (default $FUZZ_SECONDS
#                                    or 20 s) on a scratch copy of its corpus
#   scripts/fuzz.sh replay           run each target once over its corpus
#   FUZZ_JOBS=2 scripts/fuzz.sh run  two targets at a time (each still
#                                    fuzzed for SECONDS)
#
# run and replay print one line per target, "PASS fuzz/<name>" or
# "FAIL fuzz/<name>: <reason>", and exit non-zero if any target failed.
# Logs and crash artifacts go to build/fuzz/.
set -u

cd "$(dirname "$0")/.." || exit 2

OUT=build/fuzz
CC_FUZZ=${FUZZ_CC:-clang}
CFLAGS_FUZZ=(-g -O1 "-fsanitize=fuzzer,address,undefined"
  -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  -Iinclude -Iserver -Ibuild/gen -D_GNU_SOURCE)

usage() {
  echo "usage: $0 build | run [SECONDS] | replay" >&2
  exit 2
}

targets() {
  local f
  for f in tests/fuzz/fuzz_*.c; do
    [ -e "$f" ] || continue
    basename "$f" .c
  done
}

pkg_flags() {
  pkg-config --cflags --libs libcrypto jansson zlib libprotobuf-c 2>/dev/null
}

# The extra sources a target names on its "// fuzz-sources:" lines.
extra_sources() {
  sed -n 's|^// fuzz-sources:||p' "tests/fuzz/$1.c"
}

# Compile one target; output goes to its build log so the caller decides
# what to print.
build_one() {
  local name=$1 log=$OUT/$1.build.log
  mkdir -p "$OUT"
  # code generated at build time (protoc-c) that a target may name
  if extra_sources "$name" | grep -q 'build/gen/'; then
    make -s proto >"$log" 2>&1 || return 1
  fi
  # shellcheck disable=SC2046 # pkg-config and source lists are meant to split
  "$CC_FUZZ" "${CFLAGS_FUZZ[@]}" "tests/fuzz/$name.c" lib/*.c \
    $(extra_sources "$name") $(pkg_flags) -o "$OUT/$name" >"$log" 2>&1
}

# A binary is stale when any source it is built from (or the header next
# to an extra source) is newer.
needs_build() {
  local bin=$OUT/$1 extra
  [ -x "$bin" ] || return 0
  extra=$(extra_sources "$1")
  # shellcheck disable=SC2046,SC2086 # word lists
  [ -n "$(find "tests/fuzz/$1.c" lib include $extra ${extra//.c/.h} \
    -newer "$bin" -type f 2>/dev/null | head -n 1)" ]
}

cmd_build() {
  local name rc=0 n=0
  command -v "$CC_FUZZ" >/dev/null || {
    echo "fuzz.sh: $CC_FUZZ not found" >&2
    exit 1
  }
  local names=() jobs=${FUZZ_JOBS:-1}
  for name in $(targets); do
    names+=("$name")
  done
  n=${#names[@]}
  for name in "${names[@]}"; do # FUZZ_JOBS compilers at a time
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
      wait -n
    done
    { if needs_build "$name"; then build_one "$name"; fi; echo $? >"$OUT/$name.build.rc"; } &
  done
  wait
  for name in "${names[@]}"; do
    if [ "$(cat "$OUT/$name.build.rc")" = 0 ]; then
      echo "built $OUT/$name"
    else
      echo "fuzz.sh: building $name failed:" >&2
      cat "$OUT/$name.build.log" >&2
      rc=1
    fi
  done
  [ "$n" -gt 0 ] || echo "fuzz.sh: no tests/fuzz/fuzz_*.c targets" >&2
  return $rc
}

# Short, single-line explanation of a failed run from its log.
failure_reason() {
  local log=$1 code=$2 what artifact
  what=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer: |runtime error: |invariant failed' "$log" |
    sed -e 's/^==[0-9]*==//' -e 's/^[[:space:]]*//' | cut -c1-160)
  artifact=$(grep -m1 -oE '(Test unit|artifact) written to [^ ]+' "$log" |
    sed -E 's/.* written to //')
  [ -n "$what" ] || what="exit status $code"
  if [ -n "$artifact" ]; then
    echo "$what (input: $artifact, log: $log)"
  else
    echo "$what (log: $log)"
  fi
}

# Run one target with the extra libFuzzer arguments given; mode names the
# log file. Prints its PASS/FAIL line; exit status 1 if it failed.
run_one() {
  local mode=$1 name=$2
  shift 2
  if needs_build "$name" && ! build_one "$name"; then
    echo "FAIL fuzz/$name: build failed (log: $OUT/$name.build.log)"
    return 1
  fi
  local short=${name#fuzz_} log=$OUT/$name.$mode.log tmp code
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/hf-fuzz-$short.XXXXXX") || {
    echo "FAIL fuzz/$name: cannot create a scratch corpus directory"
    return 1
  }
  # Work on a copy so new inputs never land in the repository corpus.
  if [ -d "tests/fuzz/corpus/$short" ]; then
    cp -R "tests/fuzz/corpus/$short/." "$tmp/"
  fi
  local args=("$@" -timeout=5 -rss_limit_mb=2048
    "-artifact_prefix=$OUT/artifacts/$name-")
  if [ -f "tests/fuzz/$short.dict" ]; then
    args+=("-dict=tests/fuzz/$short.dict")
  elif [ -f "tests/fuzz/$name.dict" ]; then
    args+=("-dict=tests/fuzz/$name.dict")
  fi
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "./$OUT/$name" "${args[@]}" "$tmp" >"$log" 2>&1
  code=$?
  rm -rf "$tmp"
  if [ "$code" -eq 0 ]; then
    echo "PASS fuzz/$name"
  else
    echo "FAIL fuzz/$name: $(failure_reason "$log" "$code")"
    return 1
  fi
}

# Run every target, FUZZ_JOBS (default 1) at a time, each for the same
# time as alone; the PASS/FAIL lines come in target order.
run_all() {
  local mode=$1 name rc=0 n=0 jobs=${FUZZ_JOBS:-1} i
  shift
  mkdir -p "$OUT/artifacts"
  local names=()
  for name in $(targets); do
    names+=("$name")
  done
  n=${#names[@]}
  if [ "$n" -eq 0 ]; then
    echo "FAIL fuzz: no tests/fuzz/fuzz_*.c targets"
    return 1
  fi
  for i in "${!names[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
      wait -n
    done
    run_one "$mode" "${names[$i]}" "$@" >"$OUT/${names[$i]}.$mode.result" &
  done
  wait
  for i in "${!names[@]}"; do
    cat "$OUT/${names[$i]}.$mode.result"
    grep -q '^PASS ' "$OUT/${names[$i]}.$mode.result" || rc=1
  done
  return $rc
}

case "${1:-}" in
build)
  cmd_build
  ;;
run)
  secs=${2:-${FUZZ_SECONDS:-20}}
  case "$secs" in
  '' | *[!0-9]*) usage ;;
  esac
  run_all run "-max_total_time=$secs" -print_final_stats=1
  ;;
replay)
  run_all replay -runs=0
  ;;
*)
  usage
  ;;
esac
