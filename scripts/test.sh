#!/usr/bin/env bash
# Runs every test of mbok on a fresh Debian 12 machine (installs what it needs as root):
#   1. Release build of everything (Ninja); ctest: unit tests per area on the native path,
#      the AVX2 path and qemu-x86_64, one entry per ISA tier (skipped where the CPU lacks
#      it), package consumers, tools, the tiny-transformer example's tests
#   2. the unit, tool and example tests under AddressSanitizer + UndefinedBehaviorSanitizer,
#      with the hot-path checks (MBOK_ASSERT) on
#   3. the threaded tests under ThreadSanitizer (scripts/test_tsan.sh)
#   4. the AArch64 NEON build under qemu-aarch64 (scripts/test_neon.sh)
#   5. libFuzzer runs of the file readers (scripts/fuzz.sh)
# Prints each stage's wall time, the ISA tiers that ran natively, and ends with the line
# "tests: N passed, N failed, N skipped". A ctest entry counts as one test, a script stage
# as one; a stage that cannot run here (exit code 77, or ctest's "Skipped") is a skip, never
# a pass. Exit status: 0 when nothing failed.
# Options: --skip-sanitizers, --skip-neon, --skip-fuzz (for quick local runs; CI runs
# everything). ccache is used when installed (it pays on reruns, not on a fresh machine).
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

ensure_packages "${MBOK_BUILD_PACKAGES[@]}" python3-numpy qemu-user g++-aarch64-linux-gnu clang-19 \
  libclang-rt-19-dev gnuplot-nox bible-kjv

# Ninja for every CMake build of the run, the package consumers' included.
export CMAKE_GENERATOR=Ninja
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# A build folder made earlier by another generator cannot be reused by Ninja.
fresh_generator() {
  if [ -f "$1/CMakeCache.txt" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
}

passed=0 failed=0 skipped=0
timings=()
# run_ctest DIR [ARGS...]: runs ctest, adds its counts to the totals, never stops the script.
# "No tests were found" is a failure, skipped tests (SKIP_RETURN_CODE) count as skips.
run_ctest() {
  local dir="$1"; shift
  local out rc=0
  out="$(cd "$dir" && ctest --output-on-failure --no-tests=error -j"$MBOK_JOBS" "$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | grep -v -E '^ +Start +[0-9]+: ' | tail -n 60
  local line
  line="$(printf '%s\n' "$out" | grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' | tail -n 1)"
  if [ -n "$line" ]; then
    local total fails skips
    total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
    fails="$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")"
    skips="$(printf '%s\n' "$out" | grep -c -E '^[[:space:]]+[0-9]+ - .* \(Skipped\)$' || true)"
    passed=$((passed + total - fails - skips)); failed=$((failed + fails)); skipped=$((skipped + skips))
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
  fi
  return 0
}
# stage NAME CMD...: runs a step that is not a ctest run; it counts as one test, and exit code
# 77 means it could not run here (a skip).
stage() {
  local name="$1"; shift
  log "$name"
  local rc=0
  "$@" || rc=$?
  case "$rc" in
    0) passed=$((passed + 1)) ;;
    77) echo "SKIPPED: $name" >&2; skipped=$((skipped + 1)) ;;
    *) echo "FAILED: $name (exit $rc)" >&2; failed=$((failed + 1)) ;;
  esac
  return 0
}
# timed LABEL CMD...: runs CMD and records its wall time for the summary.
timed() {
  local label="$1"; shift
  local t0=$SECONDS
  "$@"
  timings+=("$(printf '%-36s %5d s' "$label" $((SECONDS - t0)))")
}
# build DIR TARGET... : a build step that fails counts as one failed test (the tests it would
# have built do not run).
build() {
  local dir="$1"; shift
  if ! cmake --build "$dir" -j"$MBOK_JOBS" --target "$@"; then
    echo "FAILED: build of $* in $dir" >&2
    failed=$((failed + 1))
    return 1
  fi
}
start=$SECONDS

release_stage() {
  log "Release build"
  fresh_generator build/test-release
  cmake -S . -B build/test-release -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
  build build/test-release all || return 0
  log "ctest (Release)"
  run_ctest build/test-release
  # The ISA tiers this CPU ran natively, from the library's own detection.
  native="$( (build/test-release/tests/mbok_core_tests "[isa-tiers]" 2>/dev/null || true) |
    sed -n 's/^mbok-tiers-native: //p' | head -n 1)"
}

sanitizer_stage() {
  log "ASan + UBSan build"
  fresh_generator build/test-sanitize
  # -O1 -g1: sanitizer builds compile much faster than at -O2 with full debug information,
  # still inline enough that the tests run quickly, and reports keep file and line. The same
  # build has the library's hot-path checks on (MBOK_ENABLE_ASSERTS=1, no -DNDEBUG): the whole
  # unit suite, the tools' and the examples' tests run with every MBOK_ASSERT armed.
  cmake -S . -B build/test-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DMBOK_ENABLE_ASSERTS=1" -DMBOK_SANITIZE=address,undefined \
    -DMBOK_BUILD_BENCHMARKS=OFF -DMBOK_BUILD_EXAMPLES=ON "${launcher[@]}" >/dev/null
  build build/test-sanitize all || return 0
  log "ctest (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest build/test-sanitize -E 'qemu|package|isa-avx2'
}

native=""
timed "Release build + ctest" release_stage
if [ "$skip_san" -eq 0 ]; then
  timed "ASan + UBSan build + ctest" sanitizer_stage
  if [ -f scripts/test_tsan.sh ]; then
    timed "ThreadSanitizer (threaded tests)" stage "ThreadSanitizer (threaded tests)" bash scripts/test_tsan.sh build/test-tsan
  fi
fi
if [ "$skip_neon" -eq 0 ]; then
  timed "AArch64 NEON under qemu-aarch64" stage "AArch64 NEON under qemu-aarch64" bash scripts/test_neon.sh build/test-neon
fi
if [ "$skip_fuzz" -eq 0 ]; then
  timed "libFuzzer (file readers)" stage "libFuzzer (file readers)" bash scripts/fuzz.sh
fi

echo
echo "stage wall times:"
printf '  %s\n' "${timings[@]}"
printf '  %-36s %5d s\n' "total" $((SECONDS - start))
echo "ISA tiers run natively: ${native:-unknown (the Release build failed)}; AVX2 also under qemu-x86_64, NEON under qemu-aarch64 (when those stages ran)"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
