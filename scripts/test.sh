#!/usr/bin/env bash
# Runs every test of mbok on a fresh Debian 12 machine (installs what it needs as root):
#   1. Release build of everything; ctest (unit tests per area, the AVX2 path, qemu-x86_64,
#      package consumers, tools, the tiny-transformer example's tests)
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. the AArch64 NEON build under qemu-aarch64 (scripts/test_neon.sh)
#   4. libFuzzer runs of the file readers (scripts/fuzz.sh)
# Ends with one line "tests: N passed, N failed". Options: --skip-sanitizers, --skip-neon,
# --skip-fuzz (for quick local runs; CI runs everything).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$MBOK_ROOT"

skip_san=0 skip_neon=0 skip_fuzz=0
for arg in "$@"; do
  case "$arg" in
    --skip-sanitizers) skip_san=1 ;;
    --skip-neon) skip_neon=1 ;;
    --skip-fuzz) skip_fuzz=1 ;;
    *) echo "usage: scripts/test.sh [--skip-sanitizers] [--skip-neon] [--skip-fuzz]" >&2; exit 2 ;;
  esac
done

ensure_packages "${MBOK_BUILD_PACKAGES[@]}" qemu-user g++-aarch64-linux-gnu clang-19 \
  libclang-rt-19-dev gnuplot-nox bible-kjv

passed=0 failed=0
# run_ctest DIR [ARGS...]: runs ctest, adds its counts to the totals, never stops the script.
run_ctest() {
  local dir="$1"; shift
  local out rc=0
  out="$(cd "$dir" && ctest --output-on-failure -j"$MBOK_JOBS" "$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | tail -n 40
  local line
  line="$(printf '%s\n' "$out" | grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' | tail -n 1)"
  if [ -n "$line" ]; then
    local total fails
    total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
    fails="$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")"
    passed=$((passed + total - fails)); failed=$((failed + fails))
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
  fi
  return 0
}
# stage NAME CMD...: a step that is not a ctest run counts as one test.
stage() {
  local name="$1"; shift
  log "$name"
  if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name" >&2; failed=$((failed + 1)); fi
}

log "Release build"
cmake -S . -B build/test-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/test-release -j"$MBOK_JOBS"
log "ctest (Release)"
run_ctest build/test-release

if [ "$skip_san" -eq 0 ]; then
  log "ASan + UBSan build"
  cmake -S . -B build/test-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMBOK_SANITIZE=address,undefined \
    -DMBOK_BUILD_BENCHMARKS=OFF -DMBOK_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build/test-sanitize -j"$MBOK_JOBS" --target mbok_all_tests
  log "ctest (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest build/test-sanitize -E 'qemu|package|isa-avx2'
fi

if [ "$skip_neon" -eq 0 ]; then
  stage "AArch64 NEON under qemu-aarch64" bash scripts/test_neon.sh build/test-neon
fi
if [ "$skip_fuzz" -eq 0 ]; then
  stage "libFuzzer (file readers)" bash scripts/fuzz.sh
fi

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
