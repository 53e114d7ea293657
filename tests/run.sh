#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: builds the release and the ASan+UBSan variants, runs
# unit, integration (real binary on loopback), interop (clients we did not
# write) and conformance tests against both, replays and briefly runs the
# fuzzers, and ends with the line "N passed, N failed".
#   tests/run.sh                 everything
#   TESTS=unit,integration tests/run.sh   a subset (unit integration interop drills fuzz)
#   VARIANTS=release tests/run.sh         one build only
#   JOBS=1 tests/run.sh          one test file at a time (default 2)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=build/test-output
mkdir -p "$OUT"
TESTS=${TESTS:-unit,integration,interop,drills,fuzz}
VARIANTS=${VARIANTS:-release,asan}
PY=/usr/bin/python3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

pass=0
fail=0
t_start=$(date +%s)
TIMES="$OUT/times.txt" # "SECONDS VARIANT:NAME" per run, for the slowest-15 summary
: >"$TIMES"
CASES="$OUT/case-times.txt" # "SECONDS VARIANT:SUITE/CASE" from "PASS ... (N.NNs)" lines
: >"$CASES"
# Test files run JOBS at a time (each its own server on a :0 port, its own
# temporary directories and log file); results are reported in list order.
JOBS=${JOBS:-2}
export FUZZ_JOBS=${FUZZ_JOBS:-$JOBS}
declare -a J_NAME J_VAR J_PID
nj=0   # jobs started
done_=0 # jobs reported

# Test files that measure how events spread over time (an arrival curve
# per second) run alone: another file beside them would shift the curve.
SOLO=${SOLO:-" test_drain_spread "}

# job NAME VARIANT CMD...: run CMD in the background (once fewer than JOBS
# are running; a SOLO file once none is, and nothing beside it) with its
# output in $OUT/VARIANT-NAME.log, then write its exit status and duration
# next to it.
job() {
  local name=$1 variant=$2
  shift 2
  local log="$OUT/$variant-$name.log" limit=$JOBS
  [[ $SOLO == *" $name "* ]] && limit=1
  rm -f "$log.status"
  while [ "$(jobs -rp | wc -l)" -ge "$limit" ]; do
    wait -n
    report_finished
  done
  (
    t0=$(date +%s.%N)
    "$@" >"$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    echo "$rc $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" >"$log.tmp"
    mv "$log.tmp" "$log.status"
  ) &
  J_NAME[nj]=$name
  J_VAR[nj]=$variant
  J_PID[nj]=$!
  nj=$((nj + 1))
  [ "$limit" -eq 1 ] && wait_for $((nj - 1))
  report_finished
}

# Wait until job number N has finished (others keep running).
wait_for() {
  while [ ! -f "$OUT/${J_VAR[$1]}-${J_NAME[$1]}.log.status" ]; do
    wait -n
    report_finished
  done
}

# Wait until every job started so far has finished (and report them).
barrier() {
  wait
  report_finished
}

# Report, in the order they were started, the jobs that have finished: the
# PASS/FAIL lines tagged by variant; a command that fails without printing
# FAIL counts as one failure.
report_finished() {
  while [ "$done_" -lt "$nj" ] &&
    [ -f "$OUT/${J_VAR[done_]}-${J_NAME[done_]}.log.status" ]; do
    report "${J_NAME[done_]}" "${J_VAR[done_]}"
    done_=$((done_ + 1))
  done
}

report() {
  local name=$1 variant=$2
  local log="$OUT/$variant-$name.log" rc dur
  read -r rc dur <"$log.status"
  echo "== $variant: $name"
  sed -e "s/^\(PASS\|FAIL\) /\1 $variant:/" "$log" | grep -E '^(PASS|FAIL) |^  ' | grep -v '^PASS' || true
  local p f
  p=$(grep -c '^PASS ' "$log")
  f=$(grep -c '^FAIL ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $variant:$name: exited with status $rc without naming a failed test; last lines:"
    tail -n 15 "$log" | sed 's/^/  /'
    f=1
  fi
  echo "   $p passed, $f failed ($name) in $dur s"
  echo "$dur $variant:$name" >>"$TIMES"
  sed -n -E "s/^PASS ([^ ]+) \(([0-9.]+)s\)\$/\2 $variant:\1/p" "$log" >>"$CASES"
  pass=$((pass + p))
  fail=$((fail + f))
}

echo "== build"
if ! make -j2 all >"$OUT/build-release.log" 2>&1; then
  tail -n 30 "$OUT/build-release.log"
  echo "FAIL build:release"
  echo "0 passed, 1 failed"
  exit 1
fi
if [[ $VARIANTS == *asan* ]] && ! make -j2 SAN=1 all >"$OUT/build-asan.log" 2>&1; then
  tail -n 30 "$OUT/build-asan.log"
  echo "FAIL build:asan"
  echo "0 passed, 1 failed"
  exit 1
fi

# The longest jobs start first, so that they do not end the run alone: the
# fuzz targets' build (one compiler, beside the tests), each variant's drills.
fuzz_build=-1
if [[ $TESTS == *fuzz* ]]; then
  fuzz_build=$nj
  job "fuzz-build" fuzz env FUZZ_JOBS=1 scripts/fuzz.sh build
fi

for v in ${VARIANTS//,/ }; do
  bdir=build
  [ "$v" = asan ] && bdir=build/asan
  export HOLDFAST_BIN=$ROOT/$bdir/holdfast
  if [[ $TESTS == *drills* ]]; then # the short ones; DRILLS=long for all
    job drills "$v" scripts/drills.sh
  fi
  if [[ $TESTS == *unit* ]]; then
    for t in "$bdir"/tests/test_*; do
      [ -x "$t" ] || continue
      job "unit-$(basename "$t")" "$v" timeout 300 "$t"
    done
  fi
  if [[ $TESTS == *integration* ]]; then
    for t in tests/integration/test_*.py; do
      job "$(basename "$t" .py)" "$v" timeout 600 "$PY" "$t"
    done
  fi
  if [[ $TESTS == *interop* ]]; then
    for t in tests/interop/test_*.sh; do
      [ -f "$t" ] || continue
      job "interop-$(basename "$t" .sh)" "$v" timeout 600 bash "$t"
    done
  fi
done

if [[ $TESTS == *fuzz* ]]; then
  wait_for "$fuzz_build" # replay and run use what build made
  job "fuzz-replay" fuzz scripts/fuzz.sh replay
  job "fuzz-run" fuzz scripts/fuzz.sh run "${FUZZ_SECONDS:-15}"
fi
barrier

echo "== slowest 15 (seconds, all in $TIMES)"
sort -rn "$TIMES" | head -n 15 | awk '{ printf "%8.1f  %s\n", $1, $2 }'
echo "== slowest 15 test cases (seconds, all in $CASES)"
sort -rn "$CASES" | head -n 15 | awk '{ printf "%8.1f  %s\n", $1, $2 }'
echo "== done in $(($(date +%s) - t_start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
